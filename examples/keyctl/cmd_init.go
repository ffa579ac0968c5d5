package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

// initCommand writes the configuration and the audit log's keys; its
// subcommand identity makes a custodian's signing key.
func (a *app) initCommand() *cobra.Command {
	var (
		logicalName, auditLoc, auditTable, auditName string
		dynamoEndpoint, auditKeys                    string
	)
	c := &cobra.Command{
		Use:   "init",
		Short: "write the configuration and the audit log's keys",
		Long: `init writes keyctl's configuration (mode 0600) and creates the audit log's
keys next to it: the note signer key that signs checkpoints and the key the
log hashes branch key ids under (both 0600), and the verifier key auditors
use (0644). It refuses to replace an existing configuration or key.

Custodians who share one audit log (postgres:URL) share its keys: the
first runs init, the others copy audit-signer.key, audit-hash.key and
audit-verifier.pub to a private directory and give it as --audit-keys.

The trust policy (who the custodians, services and auditors are, and how
many custodians approve each kind of change) lives in the store: install
the first with "keyctl propose set-policy", approved by its own custodians.

--store, --kms-key, --region and --kms-endpoint (global flags) are saved in
the configuration.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := a.configFile()
			if err != nil {
				return err
			}
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("a configuration exists at %s; keyctl init does not replace it", path)
			}
			cfg := &config{
				Version:          configVersion,
				Store:            a.setting(a.flag("store"), "KEYCTL_STORE", ""),
				LogicalStoreName: logicalName,
				KMSKeyARN:        a.setting(a.flag("kms-key"), "KEYCTL_KMS_KEY", ""),
				Region:           a.setting(a.flag("region"), "KEYCTL_REGION", a.getenv("AWS_REGION")),
				KMSEndpoint:      a.setting(a.flag("kms-endpoint"), "KEYCTL_KMS_ENDPOINT", ""),
				DynamoDBEndpoint: dynamoEndpoint,
			}
			if err := a.initFill(cfg, path, auditLoc, auditTable); err != nil {
				return err
			}
			if auditKeys != "" {
				if err := useAuditKeys(&cfg.Audit, auditKeys); err != nil {
					return err
				}
			} else if err := makeAuditKeys(&cfg.Audit, auditName); err != nil {
				return err
			}
			if err := cfg.save(path); err != nil {
				return fmt.Errorf("writing the configuration: %w", err)
			}
			return a.initLog(cmd.Context(), cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&logicalName, "logical-store-name", "phicrypt", "the `name` bound into every wrapped version (the services' keyrings use the same)")
	f.StringVar(&auditLoc, "audit", "", "the audit log: file:`DIR`, or postgres:URL for one log all custodians share (default: file:audit beside the configuration)")
	f.StringVar(&auditTable, "audit-table", defaultAuditTable, "the PostgreSQL `table` of a postgres: audit log")
	f.StringVar(&auditName, "audit-name", "phicrypt-keyctl-audit", "the audit log's `name` (its checkpoints' origin line)")
	f.StringVar(&auditKeys, "audit-keys", "", "use the audit log's keys in `DIR` (another custodian's configuration directory, for a shared log) instead of making new ones")
	f.StringVar(&dynamoEndpoint, "dynamodb-endpoint", "", "DynamoDB endpoint `URL` for a dynamodb: store outside AWS")
	c.AddCommand(a.identityCommand())
	return c
}

// initFill completes cfg: the store URL checked, the audit paths made
// absolute.
func (a *app) initFill(cfg *config, path, auditLoc, auditTable string) error {
	if cfg.Store == "" {
		return usagef("init needs --store (file:DIR, sqlite:PATH, postgres:URL or dynamodb:TABLE)")
	}
	kind, loc, err := storeKind(cfg.Store)
	if err != nil {
		return err
	}
	if kind == "file" || kind == "sqlite" {
		abs, err := filepath.Abs(loc)
		if err != nil {
			return err
		}
		cfg.Store = kind + ":" + abs
	}
	if cfg.KMSKeyARN == "" {
		return usagef("init needs --kms-key ARN (the KMS key that wraps branch keys)")
	}
	if cfg.LogicalStoreName == "" {
		return usagef("--logical-store-name must not be empty")
	}
	if id := a.setting(a.flag("identity"), "KEYCTL_IDENTITY", ""); id != "" {
		if cfg.Identity, err = filepath.Abs(id); err != nil {
			return err
		}
	}
	dir := filepath.Dir(path)
	if auditLoc == "" {
		auditLoc = "file:" + filepath.Join(dir, "audit")
	}
	kind, where, err := sinkLocation(auditLoc)
	if err != nil {
		return err
	}
	if kind == "file" {
		if where, err = filepath.Abs(where); err != nil {
			return err
		}
		auditLoc, auditTable = "file:"+where, ""
	}
	cfg.Audit = auditConfig{
		Log:             auditLoc,
		Table:           auditTable,
		CheckpointFile:  filepath.Join(dir, "audit-checkpoint"),
		SignerKeyFile:   filepath.Join(dir, "audit-signer.key"),
		VerifierKeyFile: filepath.Join(dir, "audit-verifier.pub"),
		HashKeyFile:     filepath.Join(dir, "audit-hash.key"),
	}
	return nil
}

// useAuditKeys points c at the audit keys in dir, checking they are there
// and the secret ones private.
func useAuditKeys(c *auditConfig, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c.SignerKeyFile = filepath.Join(dir, "audit-signer.key")
	c.VerifierKeyFile = filepath.Join(dir, "audit-verifier.pub")
	c.HashKeyFile = filepath.Join(dir, "audit-hash.key")
	if _, err := readSigner(c.SignerKeyFile); err != nil {
		return err
	}
	if _, err := readHasher(c.HashKeyFile); err != nil {
		return err
	}
	_, err = readVerifierKey(c.VerifierKeyFile)
	return err
}

// initLog writes an init record to the log and prints where everything is.
func (a *app) initLog(ctx context.Context, cfg *config) error {
	l, err := openAuditLog(ctx, cfg.Audit)
	if err != nil {
		return err
	}
	defer l.Close()
	actor := "keyctl-init"
	if cfg.Identity != "" {
		if id, err := loadIdentity(cfg.Identity); err == nil {
			actor = id.Name
		}
	}
	e := l.hasher.AdminChange(time.Now(), actor, "init", "", nil)
	if err := l.record(e); err != nil {
		return err
	}
	path, _ := a.configFile()
	out := map[string]any{
		"config":       path,
		"store":        redactURL(cfg.Store),
		"audit_log":    redactURL(cfg.Audit.Log),
		"checkpoint":   cfg.Audit.CheckpointFile,
		"verifier_key": cfg.Audit.VerifierKeyFile,
	}
	return a.print(out, func() {
		a.printf("wrote %s\naudit log in %s; auditors verify with %s\nnext: install the trust policy with keyctl propose set-policy\n",
			path, redactURL(cfg.Audit.Log), cfg.Audit.VerifierKeyFile)
	})
}

// identityCommand makes a custodian's Ed25519 signing key.
func (a *app) identityCommand() *cobra.Command {
	var name, out string
	c := &cobra.Command{
		Use:   "identity",
		Short: "make a custodian's signing key (Ed25519, file mode 0600)",
		Long: `identity makes a custodian's Ed25519 key pair and writes it to --out (mode
0600, never replaced). It prints NAME=PUBLIC_KEY, what "keyctl propose
set-policy --custodian" takes. Each custodian keeps their own file; approve
signs change requests with it.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(_ *cobra.Command, _ []string) error {
			if name == "" || out == "" {
				return usagef("init identity needs --name and --out")
			}
			id, err := newIdentity(name, out)
			if err != nil {
				return err
			}
			return a.print(map[string]string{"name": id.Name, "public_key": id.PublicKey(), "file": out}, func() {
				a.printf("%s=%s\n", id.Name, id.PublicKey())
			})
		},
	}
	c.Flags().StringVar(&name, "name", "", "the custodian's `name`")
	c.Flags().StringVarP(&out, "out", "o", "", "write the key pair to `FILE`")
	return c
}
