package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/keystore"
)

// fullStore is a store with its records (the trust policies and the ids
// of applied change requests), which backups must carry: a wrapper that
// hid them would back up keys without their governance.
type fullStore interface {
	keystore.Store
	keystore.Records
	keystore.RecordKindLister
}

// withRecords returns s as a fullStore, or an error if it keeps no records.
func withRecords(s keystore.Store) (fullStore, error) {
	f, ok := s.(fullStore)
	if !ok {
		return nil, errors.New("this store keeps no records (trust policies, applied requests): keyctl backs up and restores only stores that do")
	}
	return f, nil
}

// exportCounter reports a backup's progress: Export lists the ids once,
// then reads each key with List.
type exportCounter struct {
	fullStore
	prog        progress
	done, total int
}

func (c *exportCounter) IDs(ctx context.Context) ([]string, error) {
	ids, err := c.fullStore.IDs(ctx)
	c.total = len(ids)
	c.prog.Set(0, c.total)
	return ids, err
}

func (c *exportCounter) List(ctx context.Context, id string) ([]keystore.BranchKeyVersion, error) {
	vs, err := c.fullStore.List(ctx, id)
	c.done++
	c.prog.Set(c.done, c.total)
	return vs, err
}

// restoreCounter reports a restore's progress: Restore creates each key
// with Create (the total is not known until it is done).
type restoreCounter struct {
	fullStore
	prog progress
	done int
}

func (c *restoreCounter) Create(ctx context.Context, v keystore.BranchKeyVersion) error {
	err := c.fullStore.Create(ctx, v)
	c.done++
	c.prog.Set(c.done, -1)
	return err
}

func (a *app) backupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "write a backup of every branch key (wrapped, never plaintext) to FILE",
		Long: `backup writes every version of every branch key, as KMS wrapped it, with an
integrity manifest (keystore.Export), to FILE (mode 0600: it names branch key
ids, which may be PHI). It writes FILE.partial and renames it when whole, so
FILE is never a torn backup. An interrupted backup starts again from the
beginning when run again: a backup is one read of the store, and splicing
two reads taken at different times would be a backup of no moment in time.
Progress shows as a bar on a terminal and as plain lines otherwise.`,
		Args: exactArgs(1, "one backup FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(cmd.Context(), needs{store: true, audit: true})
			if err != nil {
				return err
			}
			defer s.Close()
			prog, err := a.newProgress("backup", "keys")
			if err != nil {
				return err
			}
			full, err := withRecords(s.store)
			if err != nil {
				return err
			}
			cs := &exportCounter{fullStore: full, prog: prog}
			err = writeBackup(cmd.Context(), cs, args[0])
			prog.Finish()
			if err != nil {
				return err
			}
			e := s.audit.hasher.AdminChange(time.Now(), s.actor, "backup", "", nil)
			e.Reason = fmt.Sprintf("%d branch keys", cs.total)
			if err := s.audit.record(e); err != nil {
				return err
			}
			return a.print(map[string]any{"file": args[0], "keys": cs.total}, func() {
				a.printf("backed up %d branch key(s) to %s\n", cs.total, args[0])
			})
		},
	}
}

// writeBackup exports store to path through path.partial.
func writeBackup(ctx context.Context, store keystore.Store, path string) error {
	partial := path + ".partial"
	if _, err := os.Lstat(path); err == nil {
		return usagef("%s exists: a backup never overwrites a file; name a new one or move the old one away", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// A partial file left by an interrupted backup (or anything else at
	// that name, a symbolic link included) is removed, not written
	// through; the new one is made fresh, 0600.
	if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("writing the backup: %w", err)
	}
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the backup: %w", err)
	}
	err = keystore.Export(ctx, store, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the backup (run the same command again to start over): %w", err)
	}
	// A hard link, unlike a rename, never replaces a file that appeared
	// at path meanwhile.
	if err := os.Link(partial, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return usagef("%s appeared while the backup was written: a backup never overwrites a file; the backup is in %s", path, partial)
		}
		return fmt.Errorf("writing the backup: %w", err)
	}
	return os.Remove(partial)
}

func (a *app) restoreCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "restore a backup into the configured, empty store",
		Long: `restore checks the whole backup in FILE (format, digests, manifest) and
then recreates every branch key in the configured store, which must be
empty (keystore.Restore). A restore that fails midway leaves a partial
store: it cannot resume (a store with keys is refused, so nothing is
mixed); discard that store and restore into a new one. The restored
versions unwrap only under the logical store name they were made with.`,
		Args: exactArgs(1, "one backup FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(cmd.Context(), needs{store: true, audit: true})
			if err != nil {
				return err
			}
			defer s.Close()
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("reading the backup: %w", err)
			}
			defer f.Close()
			prog, err := a.newProgress("restore", "keys")
			if err != nil {
				return err
			}
			full, err := withRecords(s.store)
			if err != nil {
				return err
			}
			cs := &restoreCounter{fullStore: full, prog: prog}
			err = keystore.Restore(cmd.Context(), cs, f)
			prog.Finish()
			if err != nil {
				if errors.Is(err, keystore.ErrStoreNotEmpty) {
					_ = s.audit.record(s.audit.hasher.Denial(time.Now(), s.actor, "restore", "", "store not empty"))
				}
				return err
			}
			e := s.audit.hasher.AdminChange(time.Now(), s.actor, "restore", "", nil)
			e.Reason = fmt.Sprintf("%d branch keys", cs.done)
			if err := s.audit.record(e); err != nil {
				return err
			}
			return a.print(map[string]any{"file": args[0], "keys": cs.done}, func() {
				a.printf("restored %d branch key(s) from %s\n", cs.done, args[0])
			})
		},
	}
}
