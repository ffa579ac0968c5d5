package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
)

// rewrapCheckpoint is the rewrap checkpoint file (JSON, mode 0600; it
// names a branch key id): the last version settled under To.
type rewrapCheckpoint struct {
	To          string `json:"to"`
	BranchKeyID string `json:"branch_key_id"`
	Version     string `json:"version"`
}

// checkpointEvery is how often rewrap saves its position: resuming is only
// a saving (a re-run skips versions already moved), so not every version
// is worth an fsync.
const checkpointEvery = time.Second

func (a *app) rewrapCommand() *cobra.Command {
	var to, cpPath string
	var restart bool
	c := &cobra.Command{
		Use:   "rewrap --to ARN",
		Short: "move every branch key version under another KMS key (KMS ReEncrypt), resumable",
		Long: `rewrap moves every version of every branch key under the KMS key --to with KMS
ReEncrypt (custody.Rewrap): the branch keys never leave KMS in plaintext and
no data is touched. It first sets kms_key_arn in the configuration to --to,
so new versions are made under it. Progress shows as a bar on a terminal and
as plain lines otherwise. The position is saved to --checkpoint; after an
interruption, run the same command again and it resumes there (versions
already moved would be skipped anyway). The custodian needs
kms:ReEncryptFrom on the old key and kms:ReEncryptTo on the new one.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !strings.HasPrefix(to, "arn:") || !strings.Contains(to, ":key/") {
				return usagef("rewrap needs --to, a KMS key ARN (arn:...:key/ID)")
			}
			if err := a.setKMSKey(to); err != nil {
				return err
			}
			s, err := a.open(cmd.Context(), needs{store: true, kms: true, audit: true})
			if err != nil {
				return err
			}
			defer s.Close()
			if cpPath == "" {
				path, _ := a.configFile()
				cpPath = filepath.Join(filepath.Dir(path), "rewrap.checkpoint")
			}
			resume, err := readRewrapCheckpoint(cpPath, to, restart)
			if err != nil {
				return err
			}
			prog, err := a.newProgress("rewrap", "versions")
			if err != nil {
				return err
			}
			var last *rewrapCheckpoint
			var saved time.Time
			opts := custody.RewrapOptions{
				EncryptionContext: s.keys.EncryptionContext,
				Resume:            resume,
				Progress:          prog.Set,
				Checkpoint: func(id, version string) error {
					last = &rewrapCheckpoint{To: to, BranchKeyID: id, Version: version}
					if time.Since(saved) < checkpointEvery {
						return nil
					}
					saved = time.Now()
					return writeRewrapCheckpoint(cpPath, last)
				},
			}
			rep, err := custody.Rewrap(cmd.Context(), s.store, s.kms, to, opts)
			prog.Finish()
			if err != nil {
				if last != nil {
					if cerr := writeRewrapCheckpoint(cpPath, last); cerr != nil {
						return errors.Join(err, cerr)
					}
				}
				return fmt.Errorf("%w (run the same command again to resume)", err)
			}
			if err := os.Remove(cpPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			e := s.audit.hasher.AdminChange(time.Now(), s.actor, "rewrap", "", nil)
			e.Reason = fmt.Sprintf("rewrapped %d already %d by-other %d resumed %d of %d", rep.Rewrapped, rep.AlreadyMoved, rep.MovedByOther, rep.Resumed, rep.Total)
			if err := s.audit.record(e); err != nil {
				return err
			}
			out := map[string]any{"to": to, "total": rep.Total, "rewrapped": rep.Rewrapped, "already_moved": rep.AlreadyMoved, "moved_by_other": rep.MovedByOther, "resumed": rep.Resumed}
			return a.print(out, func() {
				a.printf("%d version(s): %d rewrapped, %d already under the key, %d moved by another process, %d skipped on resume\n",
					rep.Total, rep.Rewrapped, rep.AlreadyMoved, rep.MovedByOther, rep.Resumed)
			})
		},
	}
	c.Flags().StringVar(&to, "to", "", "the new KMS key `ARN`")
	c.Flags().StringVar(&cpPath, "checkpoint", "", "save and resume the position in `FILE` (default: rewrap.checkpoint beside the configuration)")
	c.Flags().BoolVar(&restart, "restart", false, "ignore a checkpoint left by an earlier rewrap")
	return c
}

// setKMSKey saves arn as the configuration's KMS key.
func (a *app) setKMSKey(arn string) error {
	path, err := a.configFile()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if cfg.KMSKeyARN == arn {
		return nil
	}
	cfg.KMSKeyARN = arn
	return cfg.save(path)
}

// readRewrapCheckpoint returns where to resume a rewrap to arn: nil when
// there is no checkpoint (or restart).
func readRewrapCheckpoint(path, arn string, restart bool) (*custody.RewrapPosition, error) {
	if restart {
		return nil, nil
	}
	b, err := readSmallFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the rewrap checkpoint: %w", err)
	}
	var cp rewrapCheckpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cp); err != nil {
		return nil, fmt.Errorf("%s is not a rewrap checkpoint (remove it, or give --restart)", path)
	}
	if cp.To != arn {
		return nil, usagef("the checkpoint %s is of a rewrap to another KMS key; finish that one, or give --restart", path)
	}
	return &custody.RewrapPosition{BranchKeyID: cp.BranchKeyID, Version: cp.Version}, nil
}

func writeRewrapCheckpoint(path string, cp *rewrapCheckpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the rewrap checkpoint: %w", err)
	}
	return nil
}
