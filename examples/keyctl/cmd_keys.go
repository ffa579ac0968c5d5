package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keystore"
)

// versionJSON is one branch key version as keyctl prints it: never the
// wrapped key, only its length.
type versionJSON struct {
	Version      string    `json:"version"`
	State        string    `json:"state"`
	CreatedAt    time.Time `json:"created_at"`
	KMSKeyARN    string    `json:"kms_key_arn"`
	Usage        uint64    `json:"usage"`
	WrappedBytes int       `json:"wrapped_bytes"`
}

func newVersionJSON(v keystore.BranchKeyVersion) versionJSON {
	return versionJSON{Version: v.Version, State: v.State.String(), CreatedAt: v.CreatedAt, KMSKeyARN: v.KMSKeyARN, Usage: v.Usage, WrappedBytes: len(v.Ciphertext)}
}

// keyJSON is one branch key in list: its fingerprint, its id only with
// --show-ids.
type keyJSON struct {
	Fingerprint   string         `json:"fingerprint"`
	ID            string         `json:"id,omitempty"`
	ActiveVersion string         `json:"active_version"`
	ActiveSince   time.Time      `json:"active_since"`
	KMSKeyARN     string         `json:"kms_key_arn"`
	Versions      int            `json:"versions"`
	States        map[string]int `json:"states"`
}

func (a *app) createCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "create ID",
		Short: "create a branch key (its first version, active)",
		Long: `create makes a branch key: a change the trust policy lets one custodian make
alone by default (quorum 1 for create), so keyctl proposes, approves with
--identity and applies it in one step. Where the policy asks more
approvals, propose it instead.`,
		Args: exactArgs(1, "one branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(cmd.Context(), needs{store: true, kms: true, audit: true, identity: true})
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := a.direct(cmd.Context(), s, custody.Change{Action: custody.ActionCreate, BranchKeyID: args[0]}, "create"); err != nil {
				return err
			}
			v, err := s.store.Active(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printVersion("created", v)
		},
	}
}

// printVersion reports a version made by create or rotate.
func (a *app) printVersion(what string, v keystore.BranchKeyVersion) error {
	out := struct {
		Fingerprint string `json:"fingerprint"`
		versionJSON
	}{keystore.Fingerprint(v.BranchKeyID), newVersionJSON(v)}
	return a.print(out, func() {
		a.printf("%s %s version %s (%s)\n", what, out.Fingerprint, v.Version, v.State)
	})
}

func (a *app) listCommand() *cobra.Command {
	var showIDs bool
	c := &cobra.Command{
		Use:   "list",
		Short: "list branch keys by fingerprint (--show-ids: with their ids)",
		Long: `list prints every branch key of the store: its fingerprint, active version,
version count and states. Branch key ids may be PHI (patient numbers), so
list prints them only with --show-ids.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open(cmd.Context(), needs{store: true})
			if err != nil {
				return err
			}
			defer s.Close()
			keys, err := listKeys(cmd.Context(), s.store, showIDs)
			if err != nil {
				return err
			}
			return a.print(map[string]any{"keys": keys}, func() {
				for _, k := range keys {
					name := k.Fingerprint
					if showIDs {
						name += " " + k.ID
					}
					a.printf("%s  active %s since %s  %d version(s)\n", name, k.ActiveVersion, k.ActiveSince.Format(time.RFC3339), k.Versions)
				}
				if len(keys) == 0 {
					a.printf("no branch keys\n")
				}
			})
		},
	}
	c.Flags().BoolVar(&showIDs, "show-ids", false, "print branch key ids (they may be PHI)")
	return c
}

// listKeys reads every branch key of store.
func listKeys(ctx context.Context, store keystore.Store, showIDs bool) ([]keyJSON, error) {
	ids, err := store.IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing branch keys: %w", err)
	}
	keys := make([]keyJSON, 0, len(ids))
	for _, id := range ids {
		vs, err := store.List(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", keystore.Fingerprint(id), err)
		}
		k := keyJSON{Fingerprint: keystore.Fingerprint(id), Versions: len(vs), States: map[string]int{}}
		if showIDs {
			k.ID = id
		}
		for _, v := range vs {
			k.States[v.State.String()]++
			if v.State == keystore.StateActive {
				k.ActiveVersion, k.ActiveSince, k.KMSKeyARN = v.Version, v.CreatedAt, v.KMSKeyARN
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (a *app) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "show every version of one branch key",
		Args:  exactArgs(1, "one branch key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(cmd.Context(), needs{store: true})
			if err != nil {
				return err
			}
			defer s.Close()
			vs, err := s.store.List(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := struct {
				ID          string        `json:"id"`
				Fingerprint string        `json:"fingerprint"`
				Versions    []versionJSON `json:"versions"`
			}{ID: args[0], Fingerprint: keystore.Fingerprint(args[0])}
			for _, v := range vs {
				out.Versions = append(out.Versions, newVersionJSON(v))
			}
			return a.print(out, func() {
				a.printf("%s\n", out.Fingerprint)
				for _, v := range out.Versions {
					a.printf("  %s  %-12s  created %s  usage %d  %s\n", v.Version, v.State, v.CreatedAt.Format(time.RFC3339), v.Usage, v.KMSKeyARN)
				}
			})
		},
	}
}

func (a *app) rotateCommand() *cobra.Command {
	var (
		due         bool
		maxAge      time.Duration
		maxMessages uint64
	)
	c := &cobra.Command{
		Use:   "rotate [ID]",
		Short: "rotate a branch key, or with --due every key due under a policy",
		Long: `rotate ID makes a new active version of the branch key; the old one stays
decrypt-only. It is a change: keyctl makes it in one step where the trust
policy sets rotate's quorum to 1 (--quorum-for rotate=1), and otherwise
it must be proposed and approved. rotate --due --max-age D --max-messages N
rotates every key whose active version is due (custody.RotateDue), which
custodians may do alone (rotation by age or usage); it is safe to run from
several hosts at once.`,
		Args: rangeArgs(0, 1, "a branch key ID, or --due"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if due == (len(args) == 1) {
				return usagef("give a branch key ID or --due, not both")
			}
			if !due && (maxAge != 0 || maxMessages != 0) {
				return usagef("--max-age and --max-messages go with --due")
			}
			if maxAge < 0 {
				return usagef("--max-age must not be negative")
			}
			s, err := a.open(cmd.Context(), needs{store: true, kms: true, audit: true, identity: true})
			if err != nil {
				return err
			}
			defer s.Close()
			if due {
				return a.rotateDue(cmd.Context(), s, custody.RotationPolicy{MaxAge: maxAge, MaxMessages: maxMessages})
			}
			if _, err := a.direct(cmd.Context(), s, custody.Change{Action: custody.ActionRotate, BranchKeyID: args[0]}, "rotate"); err != nil {
				return err
			}
			v, err := s.store.Active(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printVersion("rotated", v)
		},
	}
	c.Flags().BoolVar(&due, "due", false, "rotate every key due under --max-age / --max-messages")
	c.Flags().DurationVar(&maxAge, "max-age", 0, "with --due: rotate active versions at least this old")
	c.Flags().Uint64Var(&maxMessages, "max-messages", 0, "with --due: rotate active versions used at least this often")
	return c
}

func (a *app) rotateDue(ctx context.Context, s *session, p custody.RotationPolicy) error {
	if p.MaxAge < 0 {
		return usagef("--max-age must not be negative")
	}
	if p.MaxAge == 0 && p.MaxMessages == 0 {
		return usagef("--due needs --max-age or --max-messages")
	}
	// Rotation by age or usage is a custodian's own use, not a change:
	// the policy of every key must allow it.
	auth, err := s.authority()
	if err != nil {
		return err
	}
	ids, err := s.store.IDs(ctx)
	if err != nil {
		return err
	}
	act := custody.ActionRotateByAge
	if p.MaxAge == 0 {
		act = custody.ActionRotateByUsage
	}
	for _, id := range ids {
		if err := auth.Check(ctx, s.actor, id, act); err != nil {
			return err
		}
	}
	rep, err := s.keys.RotateDue(ctx, p)
	e := s.audit.hasher.AdminChange(time.Now(), s.actor, "rotate-due", "", nil)
	e.Reason = fmt.Sprintf("checked %d rotated %d by-other %d failed %d", rep.Checked, rep.Rotated, rep.RotatedByOther, rep.Failed)
	if aerr := s.audit.record(e); aerr != nil {
		return errors.Join(err, aerr)
	}
	if err != nil {
		return err
	}
	out := map[string]int{"checked": rep.Checked, "rotated": rep.Rotated, "rotated_by_other": rep.RotatedByOther, "failed": rep.Failed}
	return a.print(out, func() {
		a.printf("checked %d, rotated %d (%d by another process), %d failed\n", rep.Checked, rep.Rotated, rep.RotatedByOther, rep.Failed)
	})
}
