// Self-test of esdk.mjs with the JavaScript SDK alone (no Go): `npm test` or
// `node selftest.mjs`. Raw AES round trips over sizes, frame lengths, suites and
// contexts; v1 suites under the commitment policies; error reporting.
// With ESDK_KMS_ENDPOINT and ESDK_KMS_KEY set (a kmsmock or moto_server URL and a
// key ARN there), KMS keyring round trips too.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes, generateKeyPairSync } from 'node:crypto'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('./esdk.mjs', import.meta.url))

function cli(args, input) {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, maxBuffer: 1 << 30 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() }
}

function batch(jobs) {
  const r = cli(['batch'], Buffer.from(JSON.stringify(jobs)))
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.toString())
  assert.equal(out.length, jobs.length)
  return out
}

const KEY = randomBytes(32).toString('hex')
const RAW = { 'raw-aes-key-hex': KEY, 'key-namespace': 'interop-ns', 'key-name': 'key-1' }
const CONTEXTS = [
  {},
  { tenant: 'a', purpose: 'test', 'record-id': '1234', empty: '' },
  { 'clé': 'värde', '患者': '記録 🔐', 'emoji-🙂': 'ok' },
]
const SIZES = [0, 1, 4095, 4096, 4097, 1 << 20]

test('raw AES round trips: sizes x frame lengths x suites x contexts (batch)', () => {
  const cases = []
  for (const size of SIZES) {
    for (const frame of [4096, 65536]) {
      for (const suite of ['0x0478', '0x0578']) {
        for (const context of CONTEXTS) {
          cases.push({ size, frame, suite, context, pt: randomBytes(size) })
        }
      }
    }
  }
  const enc = batch(cases.map((c) => ({
    op: 'encrypt',
    args: { ...RAW, 'frame-length': c.frame, suite: c.suite, context: JSON.stringify(c.context) },
    inputB64: c.pt.toString('base64'),
  })))
  enc.forEach((r, i) => {
    assert.ok(r.ok, r.error)
    assert.equal(r.header.suiteId, cases[i].suite)
    assert.equal(r.header.frameLength, cases[i].frame)
  })
  const dec = batch(cases.map((c, i) => ({
    op: 'decrypt',
    args: { ...RAW, context: JSON.stringify(c.context) },
    inputB64: enc[i].outputB64,
  })))
  dec.forEach((r, i) => {
    const c = cases[i]
    assert.ok(r.ok, `size=${c.size} frame=${c.frame} suite=${c.suite}: ${r.error}`)
    assert.ok(Buffer.from(r.outputB64, 'base64').equals(c.pt), `plaintext mismatch size=${c.size}`)
    for (const [k, v] of Object.entries(c.context)) assert.equal(r.header.encryptionContext[k], v)
    if (c.suite === '0x0578') assert.ok('aws-crypto-public-key' in r.header.encryptionContext)
  })
})

test('single-op CLI round trip and context check', () => {
  const pt = randomBytes(5000)
  const flags = ['--raw-aes-key-hex', KEY, '--key-namespace', 'interop-ns', '--key-name', 'key-1']
  const ctx = JSON.stringify(CONTEXTS[2])
  const e = cli(['encrypt', ...flags, '--suite', '0x0478', '--frame-length', '4096', '--context', ctx], pt)
  assert.equal(e.status, 0, e.stderr)
  const d = cli(['decrypt', ...flags, '--context', ctx], e.stdout)
  assert.equal(d.status, 0, d.stderr)
  assert.ok(d.stdout.equals(pt))
  const bad = cli(['decrypt', ...flags, '--context', '{"clé":"autre"}'], e.stdout)
  assert.equal(bad.status, 1)
  assert.match(bad.stderr, /^esdk: encryption context mismatch.*\n$/)
  const missing = cli(['decrypt', ...flags, '--context', '{"nope":"x"}'], e.stdout)
  assert.equal(missing.status, 1)
  const wrongKey = cli(['decrypt', '--raw-aes-key-hex', randomBytes(32).toString('hex'),
    '--key-namespace', 'interop-ns', '--key-name', 'key-1'], e.stdout)
  assert.equal(wrongKey.status, 1)
  assert.equal(wrongKey.stderr.trim().split('\n').length, 1)
  const tampered = Buffer.from(e.stdout)
  tampered[tampered.length - 20] ^= 1
  const t = cli(['decrypt', ...flags], tampered)
  assert.equal(t.status, 1)
  const truncated = cli(['decrypt', ...flags], e.stdout.subarray(0, e.stdout.length - 1))
  assert.equal(truncated.status, 1)
  const usage = cli(['encrypt', '--nope'], Buffer.alloc(0))
  assert.equal(usage.status, 2)
})

test('v1 suites and commitment policies', () => {
  const pt = randomBytes(3000)
  for (const suite of ['0x0178', '0x0378']) {
    const [refused] = batch([{ op: 'encrypt', args: { ...RAW, suite }, inputB64: pt.toString('base64') }])
    assert.equal(refused.ok, false, 'v1 suite must be refused under the default policy')
    const [enc] = batch([{
      op: 'encrypt',
      args: { ...RAW, suite, 'commitment-policy': 'forbid-encrypt-allow-decrypt' },
      inputB64: pt.toString('base64'),
    }])
    assert.ok(enc.ok, enc.error)
    assert.equal(enc.header.version, 1)
    assert.equal(enc.header.suiteId, suite)
    const [strict, allow, forbid] = batch(['require-encrypt-require-decrypt', 'require-encrypt-allow-decrypt',
      'forbid-encrypt-allow-decrypt'].map((p) => ({
      op: 'decrypt', args: { ...RAW, 'commitment-policy': p }, inputB64: enc.outputB64,
    })))
    assert.equal(strict.ok, false, 'require-encrypt-require-decrypt must refuse a v1 message')
    assert.ok(allow.ok, allow.error)
    assert.ok(forbid.ok, forbid.error)
    assert.ok(Buffer.from(allow.outputB64, 'base64').equals(pt))
  }
})

test('max-edks', () => {
  const k2 = randomBytes(32).toString('hex')
  const multi = { 'raw-aes-key-hex': [KEY, k2], 'key-namespace': 'interop-ns', 'key-name': ['key-1', 'key-2'] }
  const [enc] = batch([{ op: 'encrypt', args: multi, inputB64: 'aGVsbG8=' }])
  assert.ok(enc.ok, enc.error)
  assert.equal(enc.header.encryptedDataKeys.length, 2)
  const [encLimited] = batch([{ op: 'encrypt', args: { ...multi, 'max-edks': 1 }, inputB64: 'aGVsbG8=' }])
  assert.equal(encLimited.ok, false)
  const [one, two, second] = batch([
    { op: 'decrypt', args: { ...RAW, 'max-edks': 1 }, inputB64: enc.outputB64 },
    { op: 'decrypt', args: { ...RAW, 'max-edks': 2 }, inputB64: enc.outputB64 },
    { op: 'decrypt', args: { 'raw-aes-key-hex': k2, 'key-namespace': 'interop-ns', 'key-name': 'key-2' }, inputB64: enc.outputB64 },
  ])
  assert.equal(one.ok, false)
  assert.ok(two.ok, two.error)
  assert.ok(second.ok, second.error)
})

test('KMS keyring round trip', { skip: !(process.env.ESDK_KMS_ENDPOINT && process.env.ESDK_KMS_KEY) }, () => {
  const kms = {
    'kms-key': process.env.ESDK_KMS_KEY,
    'kms-endpoint': process.env.ESDK_KMS_ENDPOINT,
    region: process.env.ESDK_KMS_REGION || 'us-east-1',
  }
  const pt = randomBytes(10000)
  for (const suite of ['0x0478', '0x0578']) {
    const [enc] = batch([{ op: 'encrypt', args: { ...kms, suite, context: '{"purpose":"kms-interop"}' }, inputB64: pt.toString('base64') }])
    assert.ok(enc.ok, enc.error)
    assert.equal(enc.header.encryptedDataKeys[0].providerId, 'aws-kms')
    assert.equal(enc.header.encryptedDataKeys[0].providerInfo, process.env.ESDK_KMS_KEY)
    const [dec, disc, bad] = batch([
      { op: 'decrypt', args: { ...kms, context: '{"purpose":"kms-interop"}' }, inputB64: enc.outputB64 },
      { op: 'decrypt', args: { 'kms-discovery': true, 'kms-endpoint': kms['kms-endpoint'], region: kms.region }, inputB64: enc.outputB64 },
      { op: 'decrypt', args: { ...kms, context: '{"purpose":"other"}' }, inputB64: enc.outputB64 },
    ])
    assert.ok(dec.ok, dec.error)
    assert.ok(Buffer.from(dec.outputB64, 'base64').equals(pt))
    assert.ok(disc.ok, disc.error)
    assert.equal(bad.ok, false)
  }
  // single-op form too
  const e = cli(['encrypt', '--kms-key', kms['kms-key'], '--kms-endpoint', kms['kms-endpoint'], '--region', kms.region], pt)
  assert.equal(e.status, 0, e.stderr)
  const d = cli(['decrypt', '--kms-key', kms['kms-key'], '--kms-endpoint', kms['kms-endpoint'], '--region', kms.region], e.stdout)
  assert.equal(d.status, 0, d.stderr)
  assert.ok(d.stdout.equals(pt))
})

test('batch of 100 small jobs', () => {
  const jobs = Array.from({ length: 100 }, (_, i) => ({
    op: 'encrypt', args: { ...RAW, suite: i % 2 ? '0x0478' : '0x0578' }, inputB64: randomBytes(100).toString('base64'),
  }))
  const t0 = Date.now()
  const out = batch(jobs)
  const ms = Date.now() - t0
  assert.ok(out.every((r) => r.ok))
  const t1 = Date.now()
  const dec = batch(out.map((r) => ({ op: 'decrypt', args: RAW, inputB64: r.outputB64 })))
  const ms2 = Date.now() - t1
  assert.ok(dec.every((r) => r.ok))
  console.log(`# batch: 100 encrypts in ${ms} ms, 100 decrypts in ${ms2} ms (including node startup)`)
})

test('raw RSA round trips for each OAEP hash; the public key alone cannot decrypt', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  const names = { 'rsa-key-namespace': 'interop-rsa', 'rsa-key-name': 'escrow-1' }
  for (const padding of ['oaep-sha1', 'oaep-sha256', 'oaep-sha384', 'oaep-sha512']) {
    const pt = randomBytes(100)
    const [enc] = batch([{ op: 'encrypt', args: { ...names, 'rsa-padding': padding, 'rsa-public-key-pem': publicKey }, inputB64: pt.toString('base64') }])
    assert.ok(enc.ok, enc.error)
    assert.equal(enc.header.encryptedDataKeys.length, 1)
    assert.equal(enc.header.encryptedDataKeys[0].providerId, 'interop-rsa')
    assert.equal(enc.header.encryptedDataKeys[0].providerInfo, 'escrow-1')
    assert.equal(Buffer.from(enc.header.encryptedDataKeys[0].encryptedDataKeyB64, 'base64').length, 256)
    const [dec, pubOnly] = batch([
      { op: 'decrypt', args: { ...names, 'rsa-padding': padding, 'rsa-private-key-pem': privateKey }, inputB64: enc.outputB64 },
      { op: 'decrypt', args: { ...names, 'rsa-padding': padding, 'rsa-public-key-pem': publicKey }, inputB64: enc.outputB64 },
    ])
    assert.ok(dec.ok, dec.error)
    assert.deepEqual(Buffer.from(dec.outputB64, 'base64'), pt)
    assert.ok(!pubOnly.ok)
  }
  const r = cli(['encrypt', '--rsa-public-key-pem', publicKey, ...Object.entries(names).flatMap(([k, v]) => ['--' + k, v])], Buffer.alloc(1))
  assert.equal(r.status, 2, 'an RSA key without --rsa-padding is a usage error')
})
