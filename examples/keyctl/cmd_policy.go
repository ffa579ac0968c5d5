package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
)

// kmsPolicyFlags name the principals of the KMS key and what the policy
// allows them (custody.KMSKeyPolicyConfig).
type kmsPolicyFlags struct {
	account, logicalName                       string
	custodians, services, auditors, ctxKeys    []string
	noBranchKeys, crossKeyReEncrypt, svcRotate bool
	rootAdministers                            bool
}

func (f *kmsPolicyFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.account, "account", "", "the 12-digit AWS `account` owning the key (default: the KMS key ARN's)")
	fl.StringVar(&f.logicalName, "logical-store-name", "", "the branch key store's logical `name` (default: the configuration's)")
	fl.StringArrayVar(&f.custodians, "custodian-arn", nil, "a custodian's IAM `ARN` (repeat): administers the key, never decrypts")
	fl.StringArrayVar(&f.services, "service-arn", nil, "a service's IAM `ARN` (repeat): uses the key, never administers it")
	fl.StringArrayVar(&f.auditors, "auditor-arn", nil, "an auditor's IAM `ARN` (repeat): reads the key's metadata")
	fl.StringArrayVar(&f.ctxKeys, "required-context-key", nil, "an encryption context `key` every service call must carry (repeat)")
	fl.BoolVar(&f.noBranchKeys, "no-branch-key-store", false, "leave out the branch key store statements")
	fl.BoolVar(&f.crossKeyReEncrypt, "allow-cross-key-reencrypt", false, "let custodians ReEncrypt to and from other keys (for the time of a rewrap)")
	fl.BoolVar(&f.svcRotate, "services-rotate", false, "let services make branch key versions (usage-capped rotation)")
	fl.BoolVar(&f.rootAdministers, "account-root-administers", false, "let the account principal administer the key (AWS's default; weakens the policy)")
}

// config builds the policy configuration; cfg may be nil (before init).
func (f *kmsPolicyFlags) config(cfg *config) (custody.KMSKeyPolicyConfig, error) {
	if cfg == nil {
		cfg = &config{}
	}
	account, logicalName := f.account, cmp.Or(f.logicalName, cfg.LogicalStoreName)
	if logicalName == "" && !f.noBranchKeys {
		return custody.KMSKeyPolicyConfig{}, usagef("give --logical-store-name (no configuration to take it from)")
	}
	if account == "" {
		if parts := strings.SplitN(cfg.KMSKeyARN, ":", 6); len(parts) == 6 {
			account = parts[4]
		}
	}
	if account == "" {
		return custody.KMSKeyPolicyConfig{}, usagef("give --account (no KMS key ARN to take it from)")
	}
	return custody.KMSKeyPolicyConfig{
		Account:                  account,
		Custodians:               f.custodians,
		Services:                 f.services,
		Auditors:                 f.auditors,
		RequiredContextKeys:      f.ctxKeys,
		BranchKeyStore:           !f.noBranchKeys,
		LogicalStoreName:         logicalName,
		AllowCrossKeyReEncrypt:   f.crossKeyReEncrypt,
		ServicesRotateBranchKeys: f.svcRotate,
		AccountRootAdministers:   f.rootAdministers,
	}, nil
}

// noPrincipals reports whether no principal ARN was given.
func (f *kmsPolicyFlags) noPrincipals() bool {
	return len(f.custodians)+len(f.services)+len(f.auditors) == 0
}

// fromTrustPolicy fills pc from the trust policy that governs every key
// ("*"), with custody.Policy.KMSKeyPolicyConfig: the IAM principals its
// custodians, services and auditors name, and services' rotation where the
// policy allows it. So the KMS key policy grants what the custodians
// signed. The flags still add cross-key ReEncrypt, required context keys
// and the account root.
func (a *app) fromTrustPolicy(ctx context.Context, pc *custody.KMSKeyPolicyConfig) error {
	s, err := a.open(ctx, needs{store: true})
	if err != nil {
		return err
	}
	defer s.Close()
	auth, err := s.authority()
	if err != nil {
		return err
	}
	p, err := policyInForce(ctx, auth, custody.Change{Action: custody.ActionRewrap})
	if err != nil {
		return fmt.Errorf("no principal ARNs given and %w: give --custodian-arn and --service-arn", err)
	}
	from := p.KMSKeyPolicyConfig(pc.Account, pc.LogicalStoreName)
	from.BranchKeyStore = pc.BranchKeyStore
	from.RequiredContextKeys = pc.RequiredContextKeys
	from.AllowCrossKeyReEncrypt = pc.AllowCrossKeyReEncrypt
	from.AccountRootAdministers = pc.AccountRootAdministers
	from.ServicesRotateBranchKeys = from.ServicesRotateBranchKeys || pc.ServicesRotateBranchKeys
	*pc = from
	return nil
}

func (a *app) policyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "generate and check KMS key policies; show the trust policies in force",
		Args:  exactArgs(0, "a subcommand: generate, check or show"),
		RunE: func(*cobra.Command, []string) error {
			return usagef("policy needs a subcommand: generate, check or show")
		},
	}
	c.AddCommand(a.policyGenerateCommand(), a.policyCheckCommand(), a.policyShowCommand())
	return c
}

func (a *app) policyGenerateCommand() *cobra.Command {
	var f kmsPolicyFlags
	c := &cobra.Command{
		Use:   "generate",
		Short: "print the KMS key policy for the custodians, services and auditors",
		Long: `generate prints the key policy (custody.GenerateKMSKeyPolicy) for the KMS key:
custodians administer it and make and move branch keys but are denied
Decrypt, Encrypt, GenerateDataKey and CreateGrant; services use it under the
encryption context and are denied administration; auditors read metadata.
Without --custodian-arn, --service-arn and --auditor-arn, the principals are
the IAM ARNs the trust policy in force for every key ("*") names.
The same flags give the same bytes. Put it on the key with PutKeyPolicy (a
reviewed change), then check it with "keyctl policy check".`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// generate runs before init too: the policy goes on the
			// key that init is then given.
			cfg, err := a.loadConfig()
			if err != nil {
				if path, perr := a.configFile(); perr != nil || fileExists(path) {
					return err
				}
				cfg = nil
			}
			pc, err := f.config(cfg)
			if err != nil {
				return err
			}
			if cfg != nil && f.noPrincipals() {
				if err := a.fromTrustPolicy(cmd.Context(), &pc); err != nil {
					return err
				}
			}
			doc, err := custody.GenerateKMSKeyPolicy(pc)
			if err != nil {
				return usageError{err.Error()}
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", strings.TrimRight(string(doc), "\n"))
			return err
		},
	}
	f.add(c)
	return c
}

// violationJSON is one violation as policy check prints it.
type violationJSON struct {
	Code      string   `json:"code"`
	Statement int      `json:"statement"`
	Sid       string   `json:"sid"`
	Principal string   `json:"principal"`
	Actions   []string `json:"actions"`
	Message   string   `json:"message"`
}

func (a *app) policyCheckCommand() *cobra.Command {
	var f kmsPolicyFlags
	var file, key string
	c := &cobra.Command{
		Use:   "check",
		Short: "check a KMS key's policy keeps custodians from Decrypt and services from administration",
		Long: `check reads the KMS key's policy (GetKeyPolicy; --key, default the
configured key) or a policy document (--file) and reports every statement
that breaks separation of duty for the principals given
(custody.CheckKMSKeyPolicy): a custodian that may decrypt or use the key,
a service that may administer it, an auditor that may do more than read,
the account root or a wildcard principal. It exits 1 if it finds any.
Without principal flags, the principals are those of the trust policy in
force for every key ("*").`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" && key != "" {
				return usagef("give --file or --key, not both")
			}
			var (
				vs  []custody.KMSPolicyViolation
				err error
			)
			s, err := a.open(cmd.Context(), needs{kms: file == ""})
			if err != nil {
				return err
			}
			defer s.Close()
			pc, err := f.config(s.cfg)
			if err != nil {
				return err
			}
			if f.noPrincipals() {
				if err := a.fromTrustPolicy(cmd.Context(), &pc); err != nil {
					return err
				}
			}
			subject := file
			if file != "" {
				doc, rerr := readSmallFile(file)
				if rerr != nil {
					return fmt.Errorf("reading the policy: %w", rerr)
				}
				vs, err = custody.CheckKMSKeyPolicy(doc, pc)
			} else {
				if key == "" {
					key = s.cfg.KMSKeyARN
				}
				subject = key
				vs, err = custody.CheckKMSKey(cmd.Context(), s.kms, key, pc)
			}
			if err != nil {
				return err
			}
			out := struct {
				Subject    string          `json:"subject"`
				OK         bool            `json:"ok"`
				Violations []violationJSON `json:"violations"`
			}{Subject: subject, OK: len(vs) == 0, Violations: []violationJSON{}}
			for _, v := range vs {
				out.Violations = append(out.Violations, violationJSON{Code: string(v.Code), Statement: v.Statement, Sid: v.Sid, Principal: v.Principal, Actions: v.Actions, Message: v.Message})
			}
			if err := a.print(out, func() {
				if out.OK {
					a.printf("%s: the policy separates custodians, services and auditors\n", subject)
				}
				for _, v := range out.Violations {
					a.printf("%s: statement %d (%s) %s: %s\n", v.Code, v.Statement, v.Sid, v.Principal, v.Message)
				}
			}); err != nil {
				return err
			}
			if !out.OK {
				return fmt.Errorf("the policy of %s breaks separation of duty in %d way(s)", subject, len(vs))
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVar(&file, "file", "", "check the policy document in `FILE`")
	c.Flags().StringVar(&key, "key", "", "check the policy of KMS key `ARN` (default: the configured key)")
	return c
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (a *app) policyShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "show the trust policies installed in the store (custodians, quorums)",
		Long: `show prints every trust policy installed in the store (custody.Authority.Policies,
each verified): its scope (a fingerprint unless "*"), revision, digest,
custodians, services and auditors (names and key fingerprints) and the
quorum of each kind of change. Compare the digest with the one your team
keeps out of band: a writer of the store who bypassed keyctl could have
installed a policy of their own (the audit log records every installation).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open(cmd.Context(), needs{store: true})
			if err != nil {
				return err
			}
			defer s.Close()
			auth, err := s.authority()
			if err != nil {
				return err
			}
			ps, err := auth.Policies(cmd.Context())
			if err != nil {
				return err
			}
			out := []policyJSON{}
			for _, p := range ps {
				out = append(out, newPolicyJSON(p))
			}
			return a.print(map[string]any{"policies": out}, func() {
				if len(out) == 0 {
					a.printf("no trust policy installed: keyctl propose set-policy\n")
				}
				for _, p := range out {
					a.printf("scope %s revision %d digest %s\n  custodians: %s\n  services: %s\n  auditors: %s\n  quorum: %v\n  services may rotate: by usage %t, by age %t\n",
						p.Scope, p.Revision, p.Digest, principalNames(p.Custodians), principalNames(p.Services), principalNames(p.Auditors), p.Quorum,
						p.ServicesMayRotate.ByUsage, p.ServicesMayRotate.ByAge)
				}
			})
		},
	}
}
