// Command phicrypt encrypts standard input into an AWS Encryption SDK message
// on standard output, or decrypts one, for operators and scripts:
//
//	phicrypt encrypt --kms-key ARN --context tenant=general < record > record.enc
//	phicrypt decrypt --kms-key ARN --context tenant=general < record.enc > record
//
// Run phicrypt -h for the flags. Exit status: 0 on success, 1 when the
// message does not decrypt or anything else fails at run time, 2 for a usage
// error. Errors are one line on standard error, starting "phicrypt: ".
//
// Decrypt reads an input of at most 16 MiB whole and writes nothing unless
// all of it authenticates; a larger input is streamed, so a decrypt that
// fails on a later frame may already have written the plaintext of earlier,
// authenticated frames. Treat the output of a failed decrypt as garbage.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/logging"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2

	// wholeLimit is the largest input decrypt holds whole, writing nothing
	// until all of it authenticates. It matches the library's cap on a
	// non-framed body, which can only be decrypted whole anyway.
	wholeLimit = 16 << 20

	rawAESKeyLength = 32
	// contextReservedPrefix is reserved for the format's own context keys
	// (the ESDK's message-header spec).
	contextReservedPrefix = "aws-crypto-"
)

const usageText = `usage: phicrypt encrypt [flags] < plaintext > message
       phicrypt decrypt [flags] < message > plaintext

phicrypt encrypts standard input into an AWS Encryption SDK message on
standard output, or decrypts such a message.

Keyrings (at least one):
  --raw-aes-key FILE     a raw AES-256 wrapping key: exactly 32 bytes (not hex
                         or base64), in a file no other user may read or
                         write (chmod 600). Needs --key-namespace NS and
                         --key-name NAME, the same on encrypt and decrypt.
  --kms-key KEY          an AWS KMS key: key ARN, key id, alias name
                         (alias/NAME) or alias ARN; repeatable. On encrypt
                         the first makes the data key and every other one
                         wraps it too; on decrypt, the keys to try. Decrypt
                         turns a key id or alias into its key ARN with KMS
                         DescribeKey (kms:DescribeKey permission needed);
                         a key ARN needs no such call. An ARN's own region
                         is used for its calls.
  --kms-discovery        decrypt only, instead of --kms-key: unwrap with
                         whichever KMS key the message names. Only safe when
                         KMS key policies are the whole access control.
  --kms-endpoint URL     send KMS calls to URL (kmsmock, a VPC endpoint),
                         signing with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
                         from the environment, or "phicrypt"/"phicrypt"
                         when unset. Without it the AWS SDK's default
                         configuration (environment, profile, role) is used.
  --region R             region for KMS keys not named by ARN
                         (default $AWS_REGION, else us-east-1)
  With both raw AES and KMS, KMS makes the data key and both wrap it, so
  either one alone decrypts. Decrypt tries the raw AES key first.

Message:
  --context KEY=VALUE    repeatable. On encrypt, the encryption context: it
                         is authenticated and stored in the clear in the
                         message, so keep PHI out of its values. On decrypt,
                         pairs the message must carry.
  --frame-length N       encrypt only: plaintext bytes per frame (default 65536)
  --suite ID             encrypt only: 0x0478 (default) or 0x0578 (adds an
                         ECDSA P-384 signature)
  --workers N            encrypt only: frames sealed in parallel (default 1)
  --commitment-policy P  require-encrypt-require-decrypt (default),
                         require-encrypt-allow-decrypt (also decrypts
                         legacy messages) or forbid-encrypt-allow-decrypt
                         (decrypt only)
  --max-edks N           most encrypted data keys a message may carry
                         (default 5)

Decrypt and partial output:
  An input of at most 16 MiB is read whole and authenticated before anything
  is written: when decrypt fails, it writes nothing. A larger input is
  streamed: each frame's plaintext is written once that frame authenticates,
  so a decrypt that fails on a later frame (truncated, altered, bad signature)
  may already have written the plaintext of earlier frames. Exit status 1
  then means: discard the output. Write to a temporary file and keep it only
  on exit status 0.

Exit status: 0 success; 1 the message does not decrypt, or another failure
(KMS, input/output); 2 usage error (unknown flag, no keyring, bad value).
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a mistake in the invocation: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usageText)
		return exitOK
	}
	if err == nil {
		err = execute(ctx, opts, stdin, stdout)
	}
	return report(stderr, err)
}

// report prints err as one line and returns the exit status for it.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	msg := strings.TrimPrefix(err.Error(), "phicrypt: ")
	msg = strings.ReplaceAll(msg, "\n", "; ") // errors.Join separates with newlines
	var uerr usageError
	if errors.As(err, &uerr) {
		fmt.Fprintf(stderr, "phicrypt: %s (phicrypt -h for usage)\n", msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "phicrypt: %s\n", msg)
	return exitFailure
}

// execute builds the Encryptor and runs the command.
func execute(ctx context.Context, opts *options, stdin io.Reader, stdout io.Writer) error {
	enc, err := newEncryptor(ctx, opts)
	if err != nil {
		return err
	}
	if opts.command == "encrypt" {
		return encrypt(ctx, enc, opts.context, stdin, stdout)
	}
	return decrypt(ctx, enc, opts.context, stdin, stdout)
}

// options are the parsed command line.
type options struct {
	command               string // "encrypt" or "decrypt"
	rawKeyFile            string
	keyNamespace, keyName string
	kmsKeys               stringList
	kmsDiscovery          bool
	kmsEndpoint, region   string
	context               contextFlag
	frameLength, workers  int
	maxEDKs               int
	suite                 phicrypt.Suite
	policy                phicrypt.CommitmentPolicy
}

// parseArgs parses the command and its flags. Errors are usageErrors, or
// flag.ErrHelp.
func parseArgs(args []string) (*options, error) {
	if len(args) == 0 {
		return nil, usagef("missing command: encrypt or decrypt")
	}
	switch args[0] {
	case "encrypt", "decrypt":
	case "-h", "-help", "--help", "help":
		return nil, flag.ErrHelp
	default:
		return nil, usagef("unknown command %q: want encrypt or decrypt", args[0])
	}
	opts := &options{command: args[0]}
	fs := newFlagSet(opts)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q: phicrypt reads standard input", fs.Arg(0))
	}
	return opts, opts.check()
}

// newFlagSet registers the flags of opts.command. Encrypt-only and
// decrypt-only flags are unknown to the other command.
func newFlagSet(opts *options) *flag.FlagSet {
	fs := flag.NewFlagSet("phicrypt "+opts.command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.rawKeyFile, "raw-aes-key", "", "raw AES-256 key `FILE`")
	fs.StringVar(&opts.keyNamespace, "key-namespace", "", "raw AES key namespace")
	fs.StringVar(&opts.keyName, "key-name", "", "raw AES key name")
	fs.Var(&opts.kmsKeys, "kms-key", "KMS key ARN, key id or alias (repeatable)")
	fs.StringVar(&opts.kmsEndpoint, "kms-endpoint", "", "KMS endpoint URL")
	fs.StringVar(&opts.region, "region", defaultRegion(), "AWS region")
	fs.Var(&opts.context, "context", "KEY=VALUE (repeatable)")
	opts.policy = phicrypt.RequireEncryptRequireDecrypt
	fs.Var(policyFlag{&opts.policy}, "commitment-policy", "commitment policy")
	fs.IntVar(&opts.maxEDKs, "max-edks", phicrypt.DefaultMaxEncryptedDataKeys, "maximum encrypted data keys")
	if opts.command == "encrypt" {
		opts.suite = phicrypt.SuiteCommitted
		fs.Var(suiteFlag{&opts.suite}, "suite", "algorithm suite")
		fs.IntVar(&opts.frameLength, "frame-length", phicrypt.DefaultFrameLength, "plaintext bytes per frame")
		fs.IntVar(&opts.workers, "workers", 1, "frames sealed in parallel")
	} else {
		fs.BoolVar(&opts.kmsDiscovery, "kms-discovery", false, "unwrap with the KMS key the message names")
	}
	return fs
}

func defaultRegion() string {
	if r := os.Getenv("AWS_REGION"); r != "" {
		return r
	}
	return "us-east-1"
}

// check applies the rules between flags.
func (o *options) check() error {
	if err := o.context.err; err != nil {
		return err
	}
	if err := o.checkKeyrings(); err != nil {
		return err
	}
	switch {
	case o.command == "encrypt" && o.policy == phicrypt.ForbidEncryptAllowDecrypt:
		return usagef("--commitment-policy forbid-encrypt-allow-decrypt cannot encrypt: phicrypt writes only committing suites")
	case o.command == "encrypt" && (o.frameLength < 1 || o.frameLength > phicrypt.DefaultMaxFrameLength):
		return usagef("--frame-length must be 1 to %d", phicrypt.DefaultMaxFrameLength)
	case o.command == "encrypt" && (o.workers < 1 || o.workers > 256):
		return usagef("--workers must be 1 to 256")
	case o.maxEDKs < 1 || o.maxEDKs > 0xffff:
		return usagef("--max-edks must be 1 to 65535")
	}
	return nil
}

func (o *options) checkKeyrings() error {
	raw := o.rawKeyFile != ""
	switch {
	case !raw && len(o.kmsKeys) == 0 && !o.kmsDiscovery:
		if o.command == "encrypt" {
			return usagef("no keyring: give --raw-aes-key or --kms-key")
		}
		return usagef("no keyring: give --raw-aes-key, --kms-key or --kms-discovery")
	case raw && (o.keyNamespace == "" || o.keyName == ""):
		return usagef("--raw-aes-key needs --key-namespace and --key-name")
	case !raw && (o.keyNamespace != "" || o.keyName != ""):
		return usagef("--key-namespace and --key-name need --raw-aes-key")
	case o.kmsDiscovery && len(o.kmsKeys) > 0:
		return usagef("--kms-discovery and --kms-key exclude each other: name the keys, or discover them")
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// contextFlag is the repeatable --context KEY=VALUE. Its errors are kept
// for check rather than returned from Set, because the flag package would
// quote the value, and context values may be PHI.
type contextFlag struct {
	pairs map[string]string
	err   error
}

func (c *contextFlag) String() string { return "" }

func (c *contextFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	switch {
	case c.err != nil:
	case !ok || k == "":
		c.err = usagef("--context wants KEY=VALUE with a non-empty KEY")
	case strings.HasPrefix(k, contextReservedPrefix):
		c.err = usagef("--context key %q: the prefix %q is reserved for the message format", k, contextReservedPrefix)
	case hasKey(c.pairs, k):
		c.err = usagef("--context key %q is given twice", k)
	default:
		if c.pairs == nil {
			c.pairs = map[string]string{}
		}
		c.pairs[k] = val
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// suiteFlag parses --suite.
type suiteFlag struct{ s *phicrypt.Suite }

func (f suiteFlag) String() string {
	if f.s == nil {
		return ""
	}
	return fmt.Sprintf("0x%04x", uint16(*f.s))
}

func (f suiteFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 0, 16)
	s := phicrypt.Suite(n)
	if err != nil || (s != phicrypt.SuiteCommitted && s != phicrypt.SuiteCommittedSigned) {
		return errors.New("want 0x0478 or 0x0578")
	}
	*f.s = s
	return nil
}

// policyFlag parses --commitment-policy.
type policyFlag struct{ p *phicrypt.CommitmentPolicy }

func (f policyFlag) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

func (f policyFlag) Set(v string) error {
	p, err := phicrypt.ParseCommitmentPolicy(v)
	if err != nil {
		return errors.New("want require-encrypt-require-decrypt, require-encrypt-allow-decrypt or forbid-encrypt-allow-decrypt")
	}
	*f.p = p
	return nil
}

// newEncryptor builds the keyring and the Encryptor. A configuration the
// library refuses is a usage error: it came from the flags.
func newEncryptor(ctx context.Context, opts *options) (*phicrypt.Encryptor, error) {
	kr, err := newKeyring(ctx, opts)
	if err != nil {
		return nil, err
	}
	enc, err := phicrypt.New(phicrypt.Config{
		Keyring:              kr,
		Suite:                opts.suite,
		FrameLength:          opts.frameLength,
		CommitmentPolicy:     opts.policy,
		MaxEncryptedDataKeys: opts.maxEDKs,
		Workers:              opts.workers,
	})
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return enc, nil
}

// newKeyring assembles the keyrings the flags name. On encrypt the first
// (KMS if any) makes the data key and the rest wrap it; on decrypt the raw
// AES key, which needs no network call, is tried first.
func newKeyring(ctx context.Context, opts *options) (keyring.Keyring, error) {
	var rings []keyring.Keyring
	if opts.rawKeyFile != "" {
		raw, err := newRawAES(opts)
		if err != nil {
			return nil, err
		}
		rings = append(rings, raw)
	}
	kmsRings, err := newKMSKeyrings(ctx, opts)
	if err != nil {
		return nil, err
	}
	if opts.command == "encrypt" {
		rings = append(kmsRings, rings...)
		if len(rings) == 1 {
			return rings[0], nil
		}
		return keyring.NewMulti(rings[0], rings[1:]...)
	}
	rings = append(rings, kmsRings...)
	if len(rings) == 1 {
		return rings[0], nil
	}
	return keyring.NewMulti(nil, rings...)
}

func newRawAES(opts *options) (keyring.Keyring, error) {
	key, err := readRawKey(opts.rawKeyFile)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	kr, err := keyring.NewRawAES(opts.keyNamespace, opts.keyName, key)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return kr, nil
}

// readRawKey reads a 32-byte key from a file that other users can neither
// read nor replace. Its failures are usage errors: the key file is part of
// the invocation.
func readRawKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--raw-aes-key: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, usagef("--raw-aes-key: %v", err)
	}
	// Pipes stay allowed, so that --raw-aes-key <(command) works.
	if fi.IsDir() {
		return nil, usagef("--raw-aes-key %s is a directory: name the key file inside it", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o006 != 0 {
		return nil, usagef("--raw-aes-key %s is readable or writable by every user: chmod 600 it", path)
	}
	key, err := io.ReadAll(io.LimitReader(f, rawAESKeyLength+1))
	if err != nil {
		clear(key)
		return nil, usagef("--raw-aes-key: %v", err)
	}
	if len(key) != rawAESKeyLength {
		clear(key)
		return nil, usagef("--raw-aes-key %s must hold exactly %d raw bytes (not hex or base64 text); it holds %s",
			path, rawAESKeyLength, sizeWord(len(key)))
	}
	return key, nil
}

func sizeWord(n int) string {
	if n > rawAESKeyLength {
		return "more"
	}
	return strconv.Itoa(n)
}

// newKMSKeyrings returns one keyring per --kms-key, each with a client for
// its key's region (on encrypt the first is the generator), or a discovery
// keyring, or nothing.
func newKMSKeyrings(ctx context.Context, opts *options) ([]keyring.Keyring, error) {
	if len(opts.kmsKeys) == 0 && !opts.kmsDiscovery {
		return nil, nil
	}
	client, err := kmsClients(ctx, opts)
	if err != nil {
		return nil, err
	}
	if opts.kmsDiscovery {
		kr, err := keyring.NewKMSDiscovery(keyring.KMSDiscoveryConfig{Client: client(opts.region)})
		return []keyring.Keyring{kr}, err
	}
	var rings []keyring.Keyring
	for i, id := range opts.kmsKeys {
		c := client(keyRegion(id, opts.region))
		cfg := keyring.KMSConfig{Client: c, Keys: []string{id}}
		if i == 0 && opts.command == "encrypt" {
			cfg.Generator, cfg.Keys = id, nil
		} else if opts.command == "decrypt" {
			arn, err := resolveKeyARN(ctx, c, id)
			if err != nil {
				return nil, err
			}
			cfg.Keys = []string{arn}
		}
		kr, err := keyring.NewKMS(cfg)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		rings = append(rings, kr)
	}
	return rings, nil
}

// resolveKeyARN returns the key ARN that id (a key ARN, key id, alias name
// or alias ARN) names. A message's encrypted data keys name their KMS key
// by key ARN, and decryption matches on it, so a key id or an alias that
// encrypt accepted is resolved with KMS DescribeKey before decrypt can use
// it. A key ARN is used as given, without a call.
func resolveKeyARN(ctx context.Context, c *kms.Client, id string) (string, error) {
	if isKeyARN(id) {
		return id, nil
	}
	out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("finding the key ARN of --kms-key %s (KMS DescribeKey): %w", id, err)
	}
	if out.KeyMetadata == nil || !isKeyARN(aws.ToString(out.KeyMetadata.Arn)) {
		return "", fmt.Errorf("finding the key ARN of --kms-key %s: KMS DescribeKey returned no key ARN", id)
	}
	return *out.KeyMetadata.Arn, nil
}

// isKeyARN reports whether id is a key ARN
// (arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID), not an alias ARN.
func isKeyARN(id string) bool {
	parts := strings.SplitN(id, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && parts[2] == "kms" && strings.HasPrefix(parts[5], "key/")
}

// keyRegion is the region of a key ARN (arn:PARTITION:kms:REGION:...), or
// fallback for key ids and aliases.
func keyRegion(id, fallback string) string {
	parts := strings.SplitN(id, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "kms" && parts[3] != "" {
		return parts[3]
	}
	return fallback
}

// kmsClients returns a function making one KMS client per region: for
// --kms-endpoint with static credentials, otherwise from the AWS SDK's
// default configuration.
func kmsClients(ctx context.Context, opts *options) (func(region string) *kms.Client, error) {
	var newClient func(region string) *kms.Client
	if opts.kmsEndpoint != "" {
		creds := endpointCredentials()
		newClient = func(region string) *kms.Client {
			return kms.New(kms.Options{Region: region, BaseEndpoint: aws.String(opts.kmsEndpoint), Credentials: creds})
		}
	} else {
		// Decrypt tries a raw AES key first and, when every --kms-key is
		// a key ARN (nothing to resolve), may never call KMS: it does not
		// insist on credentials up front.
		mustHaveCredentials := opts.command == "encrypt" || opts.rawKeyFile == ""
		cfg, err := defaultAWSConfig(ctx, opts.region, mustHaveCredentials)
		if err != nil {
			return nil, err
		}
		newClient = func(region string) *kms.Client {
			return kms.NewFromConfig(cfg, func(o *kms.Options) { o.Region = region })
		}
	}
	clients := map[string]*kms.Client{}
	return func(region string) *kms.Client {
		if clients[region] == nil {
			clients[region] = newClient(region)
		}
		return clients[region]
	}, nil
}

// defaultAWSConfig loads the AWS SDK's default configuration. The SDK's own
// log lines (such as its warning when the instance metadata service answers
// without a token) are dropped: the one line phicrypt prints on failure
// says what went wrong. With mustHaveCredentials, credentials are fetched
// here, before any KMS call, so that their absence is reported as what it
// is, not as a failed GenerateDataKey or Decrypt.
func defaultAWSConfig(ctx context.Context, region string, mustHaveCredentials bool) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region), config.WithLogger(logging.Nop{}))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if !mustHaveCredentials {
		return cfg, nil
	}
	if cfg.Credentials == nil {
		return aws.Config{}, errors.New(noCredentials)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, fmt.Errorf("%s (%w)", noCredentials, err)
	}
	return cfg, nil
}

const noCredentials = "no usable AWS credentials in the environment, the shared config files or an IAM role: " +
	"set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --kms-endpoint"

// endpointCredentials are the static credentials for --kms-endpoint.
func endpointCredentials() aws.CredentialsProvider {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		id, secret = "phicrypt", "phicrypt"
	}
	return credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))
}

// stepError names the step that failed, then err without its own leading
// "phicrypt: " (report puts that first, once), then advice.
type stepError struct {
	step   string
	err    error
	advice string
}

func (e *stepError) Error() string {
	return e.step + ": " + strings.TrimPrefix(e.err.Error(), "phicrypt: ") + "; " + e.advice
}

func (e *stepError) Unwrap() error { return e.err }

// encrypt streams stdin into a message on stdout.
func encrypt(ctx context.Context, enc *phicrypt.Encryptor, ec contextFlag, stdin io.Reader, stdout io.Writer) error {
	out := bufio.NewWriterSize(stdout, 64<<10)
	w, err := enc.NewWriter(ctx, out, ec.pairs)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, stdin); err != nil {
		return &stepError{step: "encrypting", err: err, advice: "the message written is incomplete and will not decrypt"}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return out.Flush()
}

// decrypt writes the plaintext of the message on stdin: whole, after it has
// all authenticated, for inputs up to wholeLimit; streamed beyond.
func decrypt(ctx context.Context, enc *phicrypt.Encryptor, expect contextFlag, stdin io.Reader, stdout io.Writer) error {
	head, err := io.ReadAll(io.LimitReader(stdin, wholeLimit+1))
	if err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	if len(head) <= wholeLimit {
		return decryptWhole(ctx, enc, head, expect.pairs, stdout)
	}
	return decryptStream(ctx, enc, io.MultiReader(bytes.NewReader(head), stdin), expect.pairs, stdout)
}

func decryptWhole(ctx context.Context, enc *phicrypt.Encryptor, msg []byte, expect map[string]string, stdout io.Writer) error {
	pt, _, err := enc.Decrypt(ctx, msg, expect)
	if err != nil {
		return err
	}
	defer clear(pt)
	_, err = stdout.Write(pt)
	return err
}

func decryptStream(ctx context.Context, enc *phicrypt.Encryptor, src io.Reader, expect map[string]string, stdout io.Writer) error {
	r, err := enc.NewReader(ctx, src, expect)
	if err != nil {
		return err
	}
	n, err := io.Copy(stdout, r)
	if err != nil && n > 0 {
		return fmt.Errorf("%w (after writing %d bytes of plaintext from earlier authenticated frames: the output is incomplete, discard it)", err, n)
	}
	return err
}
