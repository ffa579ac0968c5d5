package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
)

// escrowStatusVersion is one branch key version in escrow status: named
// by fingerprint, never by id.
type escrowStatusVersion struct {
	Fingerprint string `json:"fingerprint"`
	Version     string `json:"version"`
	State       string `json:"state"`
	Escrowed    bool   `json:"escrowed"`
	Damaged     bool   `json:"damaged,omitempty"`
}

// escrowStatusView is what escrow status prints.
type escrowStatusView struct {
	Escrow    string                `json:"escrow_key"`
	Total     int                   `json:"total"`
	Escrowed  int                   `json:"escrowed"`
	Missing   int                   `json:"missing"`
	Damaged   int                   `json:"damaged"`
	CopyLeft  int                   `json:"destroyed_with_copy"`
	Destroyed int                   `json:"destroyed"`
	Versions  []escrowStatusVersion `json:"versions"`
}

func (a *app) escrowStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "tell, for each branch key version, whether the store holds its escrow copy for escrow key NAME (no key material touched)",
		Long: `escrow status reads every branch key version of the store and its escrow
record (keyring.BranchKeys.EscrowStatus) and tells whether the store holds a
copy of the version sealed to escrow key NAME. Nothing is unwrapped and no
KMS call is made, so it says a copy is there, not that it opens to the
version's material: services check that each time they unwrap a version,
keyring.BranchKeys.Escrow checks every version, and a drill proves it.
Versions are named by fingerprint; an escrow record that does not read is
shown as DAMAGED, and a destroyed version whose copy is still there (a
destroy stopped before its shred) as COPY LEFT.

It exits with status 1 when any version that is not destroyed lacks a copy
or has a damaged record, or a destroyed one still has a copy:
have a service with keyring.HierarchicalConfig.Escrow set unwrap it, or
backfill with keyring.BranchKeys.Escrow (docs/OPERATIONS.md, "Break glass").
Run it as a routine check.`,
		Args: exactArgs(1, "one escrow key NAME"),
		RunE: func(cmd *cobra.Command, args []string) error { return a.escrowStatus(cmd.Context(), args[0]) },
	}
}

func (a *app) escrowStatus(ctx context.Context, name string) error {
	s, err := a.open(ctx, needs{store: true, kms: true})
	if err != nil {
		return err
	}
	defer s.Close()
	digest, err := escrowDigest(ctx, s, name)
	if err != nil {
		return err
	}
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s.store, Client: s.kms, KMSKeyARN: s.cfg.KMSKeyARN, LogicalStoreName: s.cfg.LogicalStoreName})
	if err != nil {
		return err
	}
	ids, err := s.store.IDs(ctx)
	if err != nil {
		return fmt.Errorf("listing branch keys: %w", err)
	}
	view := escrowStatusView{Escrow: custody.EscrowKeyFingerprint(digest), Versions: []escrowStatusVersion{}}
	for _, id := range ids {
		vs, err := s.store.List(ctx, id)
		if err != nil {
			return fmt.Errorf("listing the versions of %s: %w", keystore.Fingerprint(id), err)
		}
		for _, v := range vs {
			has, err := bk.EscrowStatus(ctx, v, digest)
			damaged := errors.Is(err, keyring.ErrEscrowRecord)
			if err != nil && !damaged {
				return err
			}
			view.Total++
			switch {
			case v.State == keystore.StateDestroyed && has:
				// A destroy stopped before its shred: the escrow key
				// would bring the material back.
				view.Destroyed++
				view.CopyLeft++
			case v.State == keystore.StateDestroyed:
				view.Destroyed++
			case damaged:
				view.Damaged++
			case has:
				view.Escrowed++
			default:
				view.Missing++
			}
			view.Versions = append(view.Versions, escrowStatusVersion{Fingerprint: keystore.Fingerprint(id), Version: v.Version, State: v.State.String(), Escrowed: has, Damaged: damaged})
		}
	}
	err = a.print(view, func() {
		for _, v := range view.Versions {
			mark := "escrowed"
			switch {
			case v.State == keystore.StateDestroyed.String() && v.Escrowed:
				mark = "destroyed, COPY LEFT (destroy it again to shred the copy)"
			case v.State == keystore.StateDestroyed.String():
				mark = "destroyed"
			case v.Damaged:
				mark = "DAMAGED (the record does not read)"
			case !v.Escrowed:
				mark = "MISSING"
			}
			a.printf("%s version %s (%s): %s\n", v.Fingerprint, v.Version, v.State, mark)
		}
		a.printf("escrow key %s: %d version(s), %d escrowed, %d missing, %d damaged, %d destroyed\n", view.Escrow, view.Total, view.Escrowed, view.Missing, view.Damaged, view.Destroyed)
	})
	if err != nil {
		return err
	}
	if view.CopyLeft > 0 {
		return fmt.Errorf("%d destroyed branch key version(s) still have an escrow copy for %s: the escrow key would bring them back; destroy them again (the destroy shreds the copy)", view.CopyLeft, name)
	}
	if view.Missing+view.Damaged > 0 {
		return fmt.Errorf("%d live branch key version(s) have no escrow copy for %s and %d an unreadable escrow record: a lost KMS key would lose them (a backfill, keyring.BranchKeys.Escrow, writes them)", view.Missing, name, view.Damaged)
	}
	return nil
}
