package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// app is one run of keyctl: its streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	configPath  string
	store       string
	kmsKey      string
	kmsEndpoint string
	region      string
	identity    string
	json        bool
	progress    string
	root        *cobra.Command
	// rewrapCheckpoint is rewrap's --checkpoint.
	rewrapCheckpoint string
}

const rootLong = `keyctl is the key custodians' tool for phicrypt branch keys.

Every change to a branch key (create, rotate, retire, disable, enable,
destroy, rewrap) and to the trust policy (set-policy) is a change request
that the trust policy's quorum of custodians must sign: one custodian
proposes it (a change file), custodians approve it with their Ed25519
identity, and apply carries it out (custody.Authority). Where the policy
lets one custodian make a change alone (create, and rotate or rewrap if it
says so), create, rotate and rewrap do it in one step. Every change, every
refusal and every approver goes to the verifiable audit log.

keyctl has no path to plaintext: there is no decrypt command, branch keys are
never unwrapped, and the KMS principal keyctl runs as (the custodian's own
AWS credentials) is refused Decrypt by the key policy that
"keyctl policy generate" writes.

Branch key ids may be PHI (patient numbers): keyctl prints a key's
fingerprint (keystore.Fingerprint), and its id only where the custodian
named it or asked for it (list --show-ids).

Configuration: keyctl init writes it (default $XDG_CONFIG_HOME/keyctl/config.json,
or --config / KEYCTL_CONFIG). --store, --kms-key, --kms-endpoint, --region and
--identity override it, as do KEYCTL_STORE, KEYCTL_KMS_KEY, KEYCTL_KMS_ENDPOINT,
KEYCTL_REGION and KEYCTL_IDENTITY. AWS credentials come from the AWS SDK's
default chain (environment, shared files, SSO, instance role).

Exit status: 0 ok, 1 failure, 2 usage error; errors are one line on stderr.`

// rootCommand builds the command tree.
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "keyctl",
		Short:         "the key custodians' tool for phicrypt branch keys",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	a.root = root
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	// A bad --progress is a usage error for every command, whether or not
	// it has a long operation to show.
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		switch a.progress {
		case "auto", "bar", "lines", "none":
			return nil
		}
		return usagef("--progress %q: want auto, bar, lines or none", a.progress)
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", "", "configuration `file` (env KEYCTL_CONFIG; default $XDG_CONFIG_HOME/keyctl/config.json)")
	pf.StringVar(&a.store, "store", "", "branch key `store`: file:DIR, sqlite:PATH, postgres:URL or dynamodb:TABLE (env KEYCTL_STORE)")
	pf.StringVar(&a.kmsKey, "kms-key", "", "KMS key `ARN` that wraps new versions (env KEYCTL_KMS_KEY)")
	pf.StringVar(&a.kmsEndpoint, "kms-endpoint", "", "send KMS calls to `URL` (kmsmock, a VPC endpoint) (env KEYCTL_KMS_ENDPOINT)")
	pf.StringVar(&a.region, "region", "", "AWS `region` (env KEYCTL_REGION, AWS_REGION)")
	pf.StringVar(&a.identity, "identity", "", "the custodian's identity `file` from init identity (env KEYCTL_IDENTITY)")
	pf.BoolVar(&a.json, "json", false, "print stable JSON instead of text")
	pf.StringVar(&a.progress, "progress", "auto", "progress of long operations: auto (a bar on a terminal, lines otherwise), bar, lines or none")

	root.AddCommand(
		a.initCommand(),
		a.createCommand(), a.listCommand(), a.showCommand(), a.rotateCommand(),
		a.retireCommand(), a.rewrapCommand(),
		a.proposeCommand(), a.approveCommand(), a.applyCommand(),
		a.disableCommand(), a.enableCommand(), a.destroyCommand(),
		a.policyCommand(), a.auditCommand(),
		a.backupCommand(), a.restoreCommand(),
		a.escrowCommand(), a.recoverCommand(),
	)
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(root.FlagErrorFunc())
	}
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c != root {
			defaultHelp(c, args)
			return
		}
		a.rootHelp(c.OutOrStdout())
	})
	return root
}

// rootHelp lists every command, subcommands included, which cobra's own
// help does not.
func (a *app) rootHelp(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  keyctl COMMAND [flags]\n\nCommands:\n", a.root.Long)
	type line struct{ name, short string }
	var lines []line
	var walk func(c *cobra.Command, prefix string)
	walk = func(c *cobra.Command, prefix string) {
		for _, s := range c.Commands() {
			if s.Hidden || s.Name() == "help" {
				continue
			}
			name := strings.TrimSpace(prefix + " " + s.Name())
			lines = append(lines, line{name, s.Short})
			if s.Name() != "completion" {
				walk(s, name)
			}
		}
	}
	walk(a.root, "")
	width := 0
	for _, l := range lines {
		width = max(width, len(l.name))
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l.name, l.short)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n%s\nRun \"keyctl COMMAND --help\" for a command's flags.\n", a.root.PersistentFlags().FlagUsages())
}

// setting returns a global flag's value if given, else the environment
// variable, else def.
func (a *app) setting(flag *pflag.Flag, env, def string) string {
	if flag.Changed {
		return flag.Value.String()
	}
	if v := a.getenv(env); v != "" {
		return v
	}
	return def
}

func (a *app) flag(name string) *pflag.Flag { return a.root.PersistentFlags().Lookup(name) }

// configFile is the configuration's path.
func (a *app) configFile() (string, error) {
	if p := a.setting(a.flag("config"), "KEYCTL_CONFIG", ""); p != "" {
		return filepath.Abs(p)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", usagef("no configuration directory (%v): give --config", err)
	}
	return filepath.Join(dir, "keyctl", "config.json"), nil
}

// loadConfig reads the configuration and applies the overrides.
func (a *app) loadConfig() (*config, error) {
	path, err := a.configFile()
	if err != nil {
		return nil, err
	}
	c, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	c.Store = a.setting(a.flag("store"), "KEYCTL_STORE", c.Store)
	c.KMSKeyARN = a.setting(a.flag("kms-key"), "KEYCTL_KMS_KEY", c.KMSKeyARN)
	c.KMSEndpoint = a.setting(a.flag("kms-endpoint"), "KEYCTL_KMS_ENDPOINT", c.KMSEndpoint)
	c.Region = a.setting(a.flag("region"), "KEYCTL_REGION", c.Region)
	if c.Region == "" {
		c.Region = a.getenv("AWS_REGION")
	}
	c.Identity = a.setting(a.flag("identity"), "KEYCTL_IDENTITY", c.Identity)
	return c, nil
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d argument(s)", names, len(args))
		}
		return nil
	}
}

// rangeArgs is cobra.RangeArgs with a usage error.
func rangeArgs(lo, hi int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef("want %s, got %d argument(s)", names, len(args))
		}
		return nil
	}
}
