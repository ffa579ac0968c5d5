#!/usr/bin/env node
// Interop CLI over the AWS Encryption SDK for JavaScript (@aws-crypto/client-node).
//
//   node esdk.mjs encrypt [flags] < plaintext  > message
//   node esdk.mjs decrypt [flags] < message    > plaintext
//   node esdk.mjs batch          < jobs.json  > results.json
//   node esdk.mjs keystore-...   [flags]      > answer.json   (hierarchical keyring, below)
//
// Single-op mode: the result bytes go to stdout; on failure one line
// "esdk: <message>" goes to stderr and the exit status is 1 (2 for a usage error).
//
// Batch mode: stdin is a JSON array of {"op": "encrypt"|"decrypt"|"keystore-...",
// "args": {flag: value, ...}, "inputB64": "..."}; stdout is a JSON array of
// {"ok": bool, "outputB64": "...", "error": "...", "header": {...}}, one per
// job in order (a keystore op's outputB64 is its JSON answer; it has no header). A failing job does not stop the batch; the exit status is 0
// unless the batch itself cannot be read.
//
// Flags (single-op form / batch "args" key, without the leading "--"):
//   --raw-aes-key-hex HEX    32-byte AES key (repeatable: one raw AES keyring each)
//   --key-namespace NS       raw AES key namespace (repeatable, paired by index; one applies to all)
//   --key-name NAME          raw AES key name (repeatable, paired by index; one applies to all)
//   --kms-key ARN            KMS key (repeatable; the first is the generator)
//   --kms-discovery          decrypt: KMS keyring in discovery mode (no --kms-key needed)
//   --kms-endpoint URL       KMS endpoint (e.g. kmsmock or moto_server)
//   --region R               KMS region (default: the key ARN's region, else us-east-1)
//   --context JSON           encryption context (object of string pairs); on decrypt every
//                            given pair must be in the message's context, else failure
//   --frame-length N         encrypt: frame length (default 4096)
//   --suite HEX              encrypt: 0x0478 | 0x0578 | 0x0178 | 0x0378 (also 0x0014..0x0346)
//   --commitment-policy P    require-encrypt-require-decrypt (default) |
//                            require-encrypt-allow-decrypt | forbid-encrypt-allow-decrypt
//   --max-edks N             maxEncryptedDataKeys of buildClient
//   --max-body-size N        decrypt: maxBodySize
//   --rsa-public-key-pem PEM   raw RSA keyring (RawRsaKeyringNode): the public key, PEM
//                            (SubjectPublicKeyInfo); encrypts
//   --rsa-private-key-pem PEM  its private key, PEM (PKCS #8); decrypts
//   --rsa-padding P          pkcs1 | oaep-sha1 | oaep-sha256 | oaep-sha384 | oaep-sha512
//                            (required with an RSA key; OAEP uses MGF1 with the same hash)
//   --rsa-key-namespace NS   raw RSA key namespace (required with an RSA key)
//   --rsa-key-name NAME      raw RSA key name (required with an RSA key)
// With raw AES or RSA keys and KMS keys, a multi-keyring is used: the KMS keyring generates.
// Batch "args" values: strings/numbers, arrays for repeatable flags, true for --kms-discovery.
// KMS credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the literal "interop".
//
// Hierarchical keyring (KmsHierarchicalKeyRingNode over a BranchKeyStoreNode, whose
// branch keys live in a DynamoDB table), for encrypt/decrypt instead of the keyrings above:
//   --branch-key-id ID          the branch key (also for keystore-version-key / keystore-export)
//   --keystore-table NAME       the DynamoDB table
//   --keystore-logical-name N   the logical keystore name (the "tablename" bound into every
//                               branch key's KMS encryption context; default: the table name)
//   --keystore-kms-key ARN      the keystore's KMS key (its "KMS Key ARN" configuration)
//   --ddb-endpoint URL          DynamoDB endpoint (e.g. moto_server); --kms-endpoint and
//                               --region serve the keystore's KMS client
//   --cache-ttl SECONDS         the keyring's cacheLimitTtl (default 60)
//   --utf8-sorting              the keyring's utf8Sorting option (default: the SDK's, false)
// Keystore operations (no stdin; the output is a JSON document):
//   keystore-create-table   create the table (partition key branch-key-id, sort key type,
//                           both strings): {"tableName": ...}
//   keystore-create-key     BranchKeyStoreNode.createKey() with no custom encryption context:
//                           {"branchKeyId": ...}
//   keystore-version-key    BranchKeyStoreNode.versionKey({branchKeyIdentifier}): {}
//   keystore-export         every item of the branch key, as the keystore reads it:
//     {"tableName", "logicalKeyStoreName", "branchKeyId", "activeVersion": UUID,
//      "versions": [item...] (oldest create-time first), "active": item, "beacon": bool}
//     item: {"branch-key-id", "type", "version" (UUID), "create-time", "kms-arn",
//            "hierarchy-version" (string), "enc" (base64), "extra": {other attributes},
//            "encryptionContext": the KMS encryption context the keystore decrypts it with}

import {
  buildClient,
  CommitmentPolicy,
  AlgorithmSuiteIdentifier,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  RawRsaKeyringNode,
  KmsKeyringNode,
  MultiKeyringNode,
  KmsHierarchicalKeyRingNode,
  BranchKeyStoreNode,
} from '@aws-crypto/client-node'
import { KMS, KMSClient } from '@aws-sdk/client-kms'
import { constants as cryptoConstants } from 'node:crypto'
import {
  DynamoDBClient,
  CreateTableCommand,
  QueryCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb'

// The AWS SDK v3 warns (multi-line, on stderr) that node < 22 will lose support
// in 2027; keep stderr to one line per failure. Other warnings: one line each.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
process.removeAllListeners('warning')
process.on('warning', (w) => {
  if (/NodeVersionSupportWarning/.test(String(w && w.message))) return
  process.stderr.write(`esdk: warning: ${String((w && w.message) || w).replace(/\s*\n\s*/g, ' ')}\n`)
})

class UsageError extends Error {}

const SUITES = {
  '0x0014': AlgorithmSuiteIdentifier.ALG_AES128_GCM_IV12_TAG16,
  '0x0046': AlgorithmSuiteIdentifier.ALG_AES192_GCM_IV12_TAG16,
  '0x0078': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16,
  '0x0114': AlgorithmSuiteIdentifier.ALG_AES128_GCM_IV12_TAG16_HKDF_SHA256,
  '0x0146': AlgorithmSuiteIdentifier.ALG_AES192_GCM_IV12_TAG16_HKDF_SHA256,
  '0x0178': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA256,
  '0x0214': AlgorithmSuiteIdentifier.ALG_AES128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256,
  '0x0346': AlgorithmSuiteIdentifier.ALG_AES192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
  '0x0378': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
  '0x0478': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
  '0x0578': AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
}

const POLICIES = {
  'require-encrypt-require-decrypt': CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
  'require-encrypt-allow-decrypt': CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
  'forbid-encrypt-allow-decrypt': CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
}

const REPEATABLE = new Set(['raw-aes-key-hex', 'key-namespace', 'key-name', 'kms-key'])
const VALUED = new Set([
  ...REPEATABLE,
  'kms-endpoint', 'region', 'context', 'frame-length', 'suite',
  'commitment-policy', 'max-edks', 'max-body-size',
  'branch-key-id', 'keystore-table', 'keystore-logical-name', 'keystore-kms-key',
  'ddb-endpoint', 'cache-ttl',
  'rsa-public-key-pem', 'rsa-private-key-pem', 'rsa-padding', 'rsa-key-namespace', 'rsa-key-name',
])
const BOOLEAN = new Set(['kms-discovery', 'utf8-sorting'])
const KEYSTORE_OPS = new Set(['keystore-create-table', 'keystore-create-key', 'keystore-version-key', 'keystore-export'])

// parseArgv turns ["--flag", "value", "--flag=value", ...] into an options object.
function parseArgv(argv) {
  const opts = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(a)}`)
    let name = a.slice(2)
    let value
    const eq = name.indexOf('=')
    if (eq >= 0) {
      value = name.slice(eq + 1)
      name = name.slice(0, eq)
    }
    if (BOOLEAN.has(name)) {
      opts[name] = value === undefined ? true : value !== 'false'
      continue
    }
    if (!VALUED.has(name)) throw new UsageError(`unknown flag --${name}`)
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag --${name} needs a value`)
      value = argv[++i]
    }
    if (REPEATABLE.has(name)) (opts[name] ||= []).push(value)
    else opts[name] = value
  }
  return opts
}

// normalize checks a batch "args" object and gives it the shape parseArgv produces.
function normalize(args) {
  if (args === undefined || args === null) return {}
  if (typeof args !== 'object' || Array.isArray(args)) throw new UsageError('args must be an object')
  const opts = {}
  for (const [rawName, v] of Object.entries(args)) {
    const name = rawName.replace(/^--/, '')
    if (BOOLEAN.has(name)) {
      opts[name] = v === true || v === 'true'
      continue
    }
    if (!VALUED.has(name)) throw new UsageError(`unknown flag --${name}`)
    if (name === 'context' && typeof v === 'object' && v !== null && !Array.isArray(v)) {
      opts[name] = v // a context may be given as an object directly in batch mode
    } else if (REPEATABLE.has(name)) {
      opts[name] = (Array.isArray(v) ? v : [v]).map(String)
    } else {
      if (Array.isArray(v) || (typeof v === 'object' && v !== null)) throw new UsageError(`flag --${name} takes one value`)
      opts[name] = String(v)
    }
  }
  return opts
}

function parseInt10(name, s, min) {
  if (!/^\d+$/.test(String(s))) throw new UsageError(`--${name}: not a non-negative integer: ${s}`)
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name}: out of range: ${s}`)
  return n
}

function parseContext(v) {
  if (v === undefined) return {}
  let ctx = v
  if (typeof v === 'string') {
    try {
      ctx = JSON.parse(v)
    } catch (e) {
      throw new UsageError(`--context: invalid JSON: ${e.message}`)
    }
  }
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx)) throw new UsageError('--context must be a JSON object')
  for (const [k, val] of Object.entries(ctx)) {
    if (typeof val !== 'string') throw new UsageError(`--context: value of ${JSON.stringify(k)} is not a string`)
  }
  return ctx
}

function pick(list, i, what) {
  if (!list || list.length === 0) throw new UsageError(`--${what} is required with --raw-aes-key-hex`)
  if (list.length === 1) return list[0]
  if (i >= list.length) throw new UsageError(`--${what}: give one value, or one per --raw-aes-key-hex`)
  return list[i]
}

function regionOfArn(arn) {
  const m = /^arn:aws[a-z-]*:kms:([^:]+):/.exec(arn)
  return m ? m[1] : undefined
}

function awsCredentials() {
  return {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'interop',
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'interop',
    ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}),
  }
}

function kmsClientProvider(opts, kmsKeys) {
  const credentials = awsCredentials()
  const fallbackRegion = opts.region || (kmsKeys.length ? regionOfArn(kmsKeys[0]) : undefined) || 'us-east-1'
  const clients = new Map()
  // The keyring calls this with the region it parsed out of the key ARN
  // (or an empty string for aliases / bare key ids).
  return (region) => {
    const r = opts.region || region || fallbackRegion
    if (!clients.has(r)) {
      const cfg = { region: r, credentials }
      if (opts['kms-endpoint']) cfg.endpoint = opts['kms-endpoint']
      clients.set(r, new KMS(cfg)) // the keyring calls client.generateDataKey etc.: needs the aggregated KMS class, not KMSClient
    }
    return clients.get(r)
  }
}

// ddbClient is the DynamoDB client of the keystore: --ddb-endpoint, --region
// (default: the keystore KMS key's region, else us-east-1).
function ddbClient(opts) {
  const cfg = {
    region: opts.region || regionOfArn(opts['keystore-kms-key'] || '') || 'us-east-1',
    credentials: awsCredentials(),
  }
  if (opts['ddb-endpoint']) cfg.endpoint = opts['ddb-endpoint']
  return new DynamoDBClient(cfg)
}

function need(opts, name, what) {
  if (!opts[name]) throw new UsageError(`--${name} is required ${what}`)
  return opts[name]
}

// branchKeyStore is a BranchKeyStoreNode over the DynamoDB table, with the
// keystore KMS key as its KMS configuration and its own KMS client (a
// KMSClient: the keystore sends commands, unlike the KMS keyring).
function branchKeyStore(opts, what) {
  const table = need(opts, 'keystore-table', what)
  const arn = need(opts, 'keystore-kms-key', what)
  const kmsCfg = { region: opts.region || regionOfArn(arn) || 'us-east-1', credentials: awsCredentials() }
  if (opts['kms-endpoint']) kmsCfg.endpoint = opts['kms-endpoint']
  return new BranchKeyStoreNode({
    logicalKeyStoreName: opts['keystore-logical-name'] || table,
    storage: { ddbTableName: table, ddbClient: ddbClient(opts) },
    keyManagement: { kmsClient: new KMSClient(kmsCfg) },
    kmsConfiguration: { identifier: arn },
  })
}

function hierarchicalKeyring(opts) {
  for (const f of ['raw-aes-key-hex', 'kms-key', 'rsa-public-key-pem', 'rsa-private-key-pem']) {
    if (opts[f]) throw new UsageError(`--branch-key-id (hierarchical keyring) and --${f} are exclusive`)
  }
  if (opts['kms-discovery']) throw new UsageError('--branch-key-id (hierarchical keyring) and --kms-discovery are exclusive')
  const input = {
    branchKeyId: opts['branch-key-id'],
    keyStore: branchKeyStore(opts, 'with --branch-key-id'),
    cacheLimitTtl: opts['cache-ttl'] !== undefined ? parseInt10('cache-ttl', opts['cache-ttl'], 0) : 60,
  }
  if (opts['utf8-sorting'] !== undefined) input.utf8Sorting = opts['utf8-sorting']
  return new KmsHierarchicalKeyRingNode(input)
}

// RSA_PADDINGS are the raw RSA keyring's paddings (framework/raw-rsa-keyring.md):
// Node's publicEncrypt/privateDecrypt padding and OAEP hash (MGF1 uses the same).
const RSA_PADDINGS = {
  'pkcs1': { padding: cryptoConstants.RSA_PKCS1_PADDING },
  'oaep-sha1': { padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
  'oaep-sha256': { padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
  'oaep-sha384': { padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha384' },
  'oaep-sha512': { padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha512' },
}

// rsaKeyring is the raw RSA keyring of the --rsa-* flags, or undefined.
function rsaKeyring(opts) {
  const publicKey = opts['rsa-public-key-pem']
  const privateKey = opts['rsa-private-key-pem']
  if (!publicKey && !privateKey) {
    for (const f of ['rsa-padding', 'rsa-key-namespace', 'rsa-key-name']) {
      if (opts[f]) throw new UsageError(`--${f} needs --rsa-public-key-pem or --rsa-private-key-pem`)
    }
    return undefined
  }
  const p = need(opts, 'rsa-padding', 'with an RSA key')
  if (!(p in RSA_PADDINGS)) throw new UsageError(`--rsa-padding: unknown padding ${p}`)
  const rsaKey = {}
  if (publicKey) rsaKey.publicKey = publicKey
  if (privateKey) rsaKey.privateKey = privateKey
  return new RawRsaKeyringNode({
    keyNamespace: need(opts, 'rsa-key-namespace', 'with an RSA key'),
    keyName: need(opts, 'rsa-key-name', 'with an RSA key'),
    rsaKey,
    ...RSA_PADDINGS[p],
  })
}

function buildKeyring(opts, op) {
  if (opts['branch-key-id']) return hierarchicalKeyring(opts)
  const keyrings = []
  const rawKeys = opts['raw-aes-key-hex'] || []
  rawKeys.forEach((hex, i) => {
    if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new UsageError('--raw-aes-key-hex: not hex')
    const key = new Uint8Array(Buffer.from(hex, 'hex'))
    if (key.length !== 32) throw new UsageError(`--raw-aes-key-hex: want 32 bytes, got ${key.length}`)
    keyrings.push(new RawAesKeyringNode({
      keyNamespace: pick(opts['key-namespace'], i, 'key-namespace'),
      keyName: pick(opts['key-name'], i, 'key-name'),
      unencryptedMasterKey: key,
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    }))
  })
  if (!rawKeys.length && (opts['key-namespace'] || opts['key-name'])) {
    throw new UsageError('--key-namespace/--key-name need --raw-aes-key-hex')
  }
  const rsa = rsaKeyring(opts)
  if (rsa) keyrings.push(rsa)

  const kmsKeys = opts['kms-key'] || []
  let kms
  if (opts['kms-discovery']) {
    if (op !== 'decrypt') throw new UsageError('--kms-discovery is for decrypt only')
    if (kmsKeys.length) throw new UsageError('--kms-discovery and --kms-key are exclusive')
    kms = new KmsKeyringNode({ discovery: true, clientProvider: kmsClientProvider(opts, kmsKeys) })
  } else if (kmsKeys.length) {
    const [generatorKeyId, ...keyIds] = kmsKeys
    kms = new KmsKeyringNode({ generatorKeyId, keyIds, clientProvider: kmsClientProvider(opts, kmsKeys) })
  }

  if (kms) {
    if (!keyrings.length) return kms
    return new MultiKeyringNode({ generator: kms, children: keyrings })
  }
  if (keyrings.length === 0) throw new UsageError('no keyring: give --raw-aes-key-hex, --rsa-public-key-pem, --rsa-private-key-pem or --kms-key')
  if (keyrings.length === 1) return keyrings[0]
  const [generator, ...children] = keyrings
  return new MultiKeyringNode({ generator, children })
}

function clientFor(opts) {
  const options = {}
  const p = opts['commitment-policy']
  if (p !== undefined) {
    if (!(p in POLICIES)) throw new UsageError(`--commitment-policy: unknown policy ${p}`)
    options.commitmentPolicy = POLICIES[p]
  } else {
    options.commitmentPolicy = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
  }
  if (opts['max-edks'] !== undefined) options.maxEncryptedDataKeys = parseInt10('max-edks', opts['max-edks'], 1)
  return buildClient(options)
}

function headerSummary(h) {
  if (!h) return undefined
  return {
    version: h.version,
    suiteId: '0x' + h.suiteId.toString(16).padStart(4, '0'),
    encryptionContext: h.encryptionContext,
    frameLength: h.frameLength,
    contentType: h.contentType,
    encryptedDataKeys: (h.encryptedDataKeys || []).map((e) => ({
      providerId: e.providerId,
      providerInfo: e.providerInfo, // UTF-8 decoded: lossy for raw AES (binary IV inside)
      providerInfoB64: Buffer.from(e.rawInfo || Buffer.from(e.providerInfo, 'utf8')).toString('base64'),
      encryptedDataKeyB64: Buffer.from(e.encryptedDataKey).toString('base64'),
    })),
  }
}

// exportItem gives one DynamoDB item (attribute values S, N or B) the
// export's shape, with the encryption context the keystore's own storage
// layer builds for it.
function exportItem(item, encryptionContext) {
  const known = new Set(['branch-key-id', 'type', 'version', 'create-time', 'kms-arn', 'hierarchy-version', 'enc'])
  const value = (av) => (av.S !== undefined ? av.S : av.N !== undefined ? av.N : av.B !== undefined ? Buffer.from(av.B).toString('base64') : av)
  const out = { extra: {} }
  for (const [name, av] of Object.entries(item)) {
    if (known.has(name)) out[name] = value(av)
    else out.extra[name] = value(av)
  }
  const type = out.type || ''
  const versionType = type === 'branch:ACTIVE' ? out.version || '' : type
  out.version = versionType.startsWith('branch:version:') ? versionType.slice('branch:version:'.length) : ''
  out.encryptionContext = encryptionContext
  return out
}

async function keystoreExport(opts) {
  const id = need(opts, 'branch-key-id', 'for keystore-export')
  const ks = branchKeyStore(opts, 'for keystore-export')
  const items = []
  let ExclusiveStartKey
  do {
    const page = await ks.storage.ddbClient.send(new QueryCommand({
      TableName: ks.storage.ddbTableName,
      KeyConditionExpression: '#pk = :id',
      ExpressionAttributeNames: { '#pk': 'branch-key-id' },
      ExpressionAttributeValues: { ':id': { S: id } },
      ConsistentRead: true,
      ExclusiveStartKey,
    }))
    items.push(...(page.Items || []))
    ExclusiveStartKey = page.LastEvaluatedKey
  } while (ExclusiveStartKey)
  const out = { tableName: ks.storage.ddbTableName, logicalKeyStoreName: ks.logicalKeyStoreName, branchKeyId: id, versions: [], beacon: false }
  for (const item of items) {
    const type = item.type && item.type.S
    if (type === 'branch:ACTIVE') {
      const enc = await ks.storage.getEncryptedActiveBranchKey(id)
      out.active = exportItem(item, enc.encryptionContext)
      out.activeVersion = out.active.version
    } else if (type && type.startsWith('branch:version:')) {
      const enc = await ks.storage.getEncryptedBranchKeyVersion(id, type.slice('branch:version:'.length))
      out.versions.push(exportItem(item, enc.encryptionContext))
    } else if (type === 'beacon:ACTIVE') {
      out.beacon = true
    } else if (type && type.startsWith('phicrypt:')) {
      // phicrypt's own items (keystore/dynamodb: usage, retired state)
    } else {
      throw new Error(`keystore-export: unexpected item type ${JSON.stringify(type)}`)
    }
  }
  if (!out.active) throw new Error('keystore-export: the branch key has no branch:ACTIVE item')
  out.versions.sort((a, b) => (a['create-time'] < b['create-time'] ? -1 : a['create-time'] > b['create-time'] ? 1 : a.version < b.version ? -1 : 1))
  return out
}

// runKeystore performs one keystore operation and returns its JSON answer.
async function runKeystore(op, opts) {
  switch (op) {
    case 'keystore-create-table': {
      const table = need(opts, 'keystore-table', `for ${op}`)
      const ddb = ddbClient(opts)
      // The schema the keystore reads (branch-keystore-node constants:
      // PARTITION_KEY "branch-key-id", SORT_KEY "type", both strings).
      await ddb.send(new CreateTableCommand({
        TableName: table,
        KeySchema: [
          { AttributeName: 'branch-key-id', KeyType: 'HASH' },
          { AttributeName: 'type', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'branch-key-id', AttributeType: 'S' },
          { AttributeName: 'type', AttributeType: 'S' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }))
      await waitUntilTableExists({ client: ddb, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: table })
      return { tableName: table }
    }
    case 'keystore-create-key': {
      if (opts['branch-key-id']) throw new UsageError('keystore-create-key: the keystore chooses the branch key id (createKey without custom encryption context)')
      const { branchKeyIdentifier } = await branchKeyStore(opts, `for ${op}`).createKey()
      return { branchKeyId: branchKeyIdentifier }
    }
    case 'keystore-version-key': {
      const id = need(opts, 'branch-key-id', `for ${op}`)
      await branchKeyStore(opts, `for ${op}`).versionKey({ branchKeyIdentifier: id })
      return {}
    }
    case 'keystore-export':
      return keystoreExport(opts)
  }
  throw new UsageError(`unknown op ${JSON.stringify(op)}`)
}

// run performs one operation; it returns {output: Buffer, header} or throws.
async function run(op, opts, input) {
  if (KEYSTORE_OPS.has(op)) {
    return { output: Buffer.from(JSON.stringify(await runKeystore(op, opts))), header: undefined }
  }
  if (op !== 'encrypt' && op !== 'decrypt') throw new UsageError(`unknown op ${JSON.stringify(op)}`)
  const context = parseContext(opts.context)
  const keyring = buildKeyring(opts, op)
  const client = clientFor(opts)

  if (op === 'encrypt') {
    for (const f of ['max-body-size']) if (opts[f] !== undefined) throw new UsageError(`--${f} is for decrypt only`)
    const eo = { encryptionContext: context }
    if (opts['frame-length'] !== undefined) eo.frameLength = parseInt10('frame-length', opts['frame-length'], 1)
    if (opts.suite !== undefined) {
      const key = '0x' + opts.suite.toLowerCase().replace(/^0x/, '').padStart(4, '0')
      if (!(key in SUITES)) throw new UsageError(`--suite: unknown suite ${opts.suite}`)
      eo.suiteId = SUITES[key]
    }
    const { result, messageHeader } = await client.encrypt(keyring, input, eo)
    return { output: result, header: headerSummary(messageHeader) }
  }

  for (const f of ['frame-length', 'suite']) if (opts[f] !== undefined) throw new UsageError(`--${f} is for encrypt only`)
  const dopts = {}
  if (opts['max-body-size'] !== undefined) dopts.maxBodySize = parseInt10('max-body-size', opts['max-body-size'], 1)
  const { plaintext, messageHeader } = await client.decrypt(keyring, input, dopts)
  const got = messageHeader.encryptionContext || {}
  for (const [k, v] of Object.entries(context)) {
    if (!Object.prototype.hasOwnProperty.call(got, k)) {
      throw new Error(`encryption context mismatch: key ${JSON.stringify(k)} missing from message`)
    }
    if (got[k] !== v) {
      throw new Error(`encryption context mismatch: key ${JSON.stringify(k)} is ${JSON.stringify(got[k])}, want ${JSON.stringify(v)}`)
    }
  }
  return { output: plaintext, header: headerSummary(messageHeader) }
}

async function readStdin() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  return Buffer.concat(chunks)
}

function oneLine(e) {
  const msg = (e && (e.message || e.name)) || String(e)
  const name = e && e.name && e.name !== 'Error' && !msg.startsWith(e.name) ? `${e.name}: ` : ''
  return (name + msg).replace(/\s*\n\s*/g, ' ').trim()
}

function writeOut(buf) {
  return new Promise((resolve, reject) => {
    process.stdout.write(buf, (err) => (err ? reject(err) : resolve()))
  })
}

async function batch() {
  const text = (await readStdin()).toString('utf8')
  let jobs
  try {
    jobs = JSON.parse(text)
  } catch (e) {
    throw new UsageError(`batch: invalid JSON: ${e.message}`)
  }
  if (!Array.isArray(jobs)) throw new UsageError('batch: input must be a JSON array of jobs')
  const results = []
  for (const job of jobs) {
    try {
      if (typeof job !== 'object' || job === null) throw new UsageError('job must be an object')
      const input = Buffer.from(job.inputB64 || '', 'base64')
      const { output, header } = await run(job.op, normalize(job.args), input)
      results.push({ ok: true, outputB64: Buffer.from(output).toString('base64'), error: '', header })
    } catch (e) {
      results.push({ ok: false, outputB64: '', error: oneLine(e) })
    }
  }
  await writeOut(JSON.stringify(results))
}

async function main() {
  const [op, ...rest] = process.argv.slice(2)
  if (op === 'batch') {
    if (rest.length) throw new UsageError('batch takes no flags')
    return batch()
  }
  if (op !== 'encrypt' && op !== 'decrypt' && !KEYSTORE_OPS.has(op)) {
    throw new UsageError('usage: node esdk.mjs <encrypt|decrypt> [flags] < in > out | node esdk.mjs batch < jobs.json' +
      ' | node esdk.mjs <' + [...KEYSTORE_OPS].join('|') + '> [flags] > out.json')
  }
  const opts = parseArgv(rest)
  const input = KEYSTORE_OPS.has(op) ? Buffer.alloc(0) : await readStdin()
  const { output } = await run(op, opts, input)
  await writeOut(output)
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`esdk: ${oneLine(e)}\n`, () => process.exit(e instanceof UsageError ? 2 : 1))
  },
)
