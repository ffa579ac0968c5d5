package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/phicrypt/phicrypt/audit"
)

// auditFlags locate a log for an auditor: by default the configuration's;
// --log, --verifier-key and --checkpoint together need no configuration
// (nor the signing or hash keys).
type auditFlags struct {
	log, table, verifierKey, checkpoint string
}

func (f *auditFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.log, "log", "", "the audit log: file:`DIR` or postgres:URL (default: the configuration's)")
	c.Flags().StringVar(&f.table, "table", "", "the PostgreSQL `table` of a postgres: log (default: the configuration's, or "+defaultAuditTable+")")
	c.Flags().StringVar(&f.verifierKey, "verifier-key", "", "the log's verifier key `file` (default: the configuration's)")
	c.Flags().StringVar(&f.checkpoint, "checkpoint", "", "the signed checkpoint `file` to verify against (default: the configuration's)")
}

// auditReader is a log opened for reading, its verifier and the verified
// checkpoint.
type auditReader struct {
	sink     audit.Sink
	verifier *audit.Verifier
	cp       audit.Checkpoint
	signed   []byte
	close    func() error
}

func (a *app) openAuditReader(ctx context.Context, f auditFlags) (*auditReader, error) {
	if f.log == "" || f.verifierKey == "" || f.checkpoint == "" {
		cfg, err := a.loadConfig()
		if err != nil {
			return nil, err
		}
		if f.log == "" {
			f.log, f.table = cfg.Audit.Log, cmp.Or(f.table, cfg.Audit.Table)
		}
		f.verifierKey = cmp.Or(f.verifierKey, cfg.Audit.VerifierKeyFile)
		f.checkpoint = cmp.Or(f.checkpoint, cfg.Audit.CheckpointFile)
	}
	vkey, err := readVerifierKey(f.verifierKey)
	if err != nil {
		return nil, err
	}
	v, err := audit.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	signed, err := readSmallFile(f.checkpoint)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint: %w", err)
	}
	cp, err := v.Open(signed)
	if err != nil {
		return nil, err
	}
	sink, closeSink, err := openSink(ctx, f.log, f.table, false)
	if err != nil {
		return nil, err
	}
	return &auditReader{sink: sink, verifier: v, cp: cp, signed: signed, close: closeSink}, nil
}

func (r *auditReader) Close() error { return r.close() }

// readAll reads every record, in pages a PostgreSQL sink accepts.
func (r *auditReader) readAll(size int64) ([][]byte, error) {
	const page = 10000
	var all [][]byte
	for start := int64(0); start < size; start += page {
		recs, err := r.sink.ReadRecords(start, min(start+page, size))
		if err != nil {
			return nil, fmt.Errorf("reading the audit log: %w", err)
		}
		all = append(all, recs...)
	}
	return all, nil
}

// recordJSON is one audit record as keyctl prints it: digests, never ids.
type recordJSON struct {
	Index     int64     `json:"index"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Actor     string    `json:"actor"`
	Operation string    `json:"operation"`
	Key       string    `json:"key,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Approvers []string  `json:"approvers"`
}

func newRecordJSON(r audit.Record) recordJSON {
	j := recordJSON{Index: r.Index, Time: r.Time.UTC(), Kind: r.Kind.String(), Actor: r.Actor, Operation: r.Operation, Reason: r.Reason, Approvers: r.Approvers}
	if !r.Key.IsZero() {
		j.Key = r.Key.String()
	}
	if j.Approvers == nil {
		j.Approvers = []string{}
	}
	return j
}

func (a *app) auditCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "verify the audit log and prove records for auditors",
		Args:  exactArgs(0, "a subcommand: verify or prove"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return usagef("audit needs a subcommand: verify or prove") },
	}
	c.AddCommand(a.auditVerifyCommand(), a.auditProveCommand())
	return c
}

func (a *app) auditVerifyCommand() *cobra.Command {
	var f auditFlags
	var since string
	var last int
	c := &cobra.Command{
		Use:   "verify",
		Short: "check every record of the audit log against its signed checkpoint",
		Long: `verify checks the checkpoint's signature with the verifier key, then that the
log's records hash to its root, in order, none edited, inserted, deleted or
cut off (audit.Verifier.VerifyRecords). With --since OLD, a checkpoint kept
from earlier, it also checks that the log was only appended to since
(a consistency proof). It prints the last --records records, approvers
included.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openAuditReader(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer r.Close()
			size := r.sink.Size()
			raw, err := r.readAll(size)
			if err != nil {
				return err
			}
			if err := r.verifier.VerifyRecords(r.cp, raw); err != nil {
				return err
			}
			if since != "" {
				if err := r.consistentSince(since); err != nil {
					return err
				}
			}
			from := int64(0)
			if last >= 0 && int64(last) < size {
				from = size - int64(last)
			}
			records := []recordJSON{}
			for _, b := range raw[from:] {
				rec, err := audit.ParseRecord(b)
				if err != nil {
					return err
				}
				records = append(records, newRecordJSON(rec))
			}
			out := map[string]any{
				"verified": true, "origin": r.cp.Origin, "checkpoint_size": r.cp.Size, "root": r.cp.Root.String(),
				"log_size": size, "unsigned_records": size - r.cp.Size, "records": records,
			}
			return a.print(out, func() {
				a.printf("audit log %s verified: %d record(s) under the signed checkpoint, root %s\n", r.cp.Origin, r.cp.Size, r.cp.Root)
				if size > r.cp.Size {
					a.printf("%d record(s) after the checkpoint, in order but not yet signed\n", size-r.cp.Size)
				}
				for _, rec := range records {
					line := fmt.Sprintf("%6d %s %-12s %-10s %s", rec.Index, rec.Time.Format(time.RFC3339), rec.Kind, rec.Actor, rec.Operation)
					if rec.Key != "" {
						line += " key:" + rec.Key[:16]
					}
					if len(rec.Approvers) > 0 {
						line += " approvers:" + strings.Join(rec.Approvers, ",")
					}
					if rec.Reason != "" {
						line += " (" + rec.Reason + ")"
					}
					a.printf("%s\n", line)
				}
			})
		},
	}
	f.add(c)
	c.Flags().StringVar(&since, "since", "", "an older signed checkpoint `file`: check the log only grew since")
	c.Flags().IntVar(&last, "records", 20, "print the last `N` records (-1: all)")
	return c
}

// consistentSince checks the log's checkpoint extends the older one in path.
func (r *auditReader) consistentSince(path string) error {
	b, err := readSmallFile(path)
	if err != nil {
		return fmt.Errorf("reading the older checkpoint: %w", err)
	}
	old, err := r.verifier.Open(b)
	if err != nil {
		return err
	}
	var proof tlog.TreeProof
	if old.Size < r.cp.Size {
		if proof, err = tlog.ProveTree(r.cp.Size, old.Size, tlog.HashReaderFunc(r.sink.ReadHashes)); err != nil {
			return fmt.Errorf("proving the log grew from %d records: %w", old.Size, err)
		}
	}
	return r.verifier.VerifyConsistency(old, r.cp, proof)
}

func (a *app) auditProveCommand() *cobra.Command {
	var f auditFlags
	var index, oldSize int64
	c := &cobra.Command{
		Use:   "prove",
		Short: "print an inclusion proof of one record (--index) or a consistency proof (--old-size)",
		Long: `prove prints, for the log's signed checkpoint, the inclusion proof of record
--index (with the record itself), or the consistency proof from the tree of
--old-size records: what an auditor holding only the verifier key checks
against the checkpoint. keyctl checks each proof before printing it.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (index >= 0) == (oldSize >= 0) {
				return usagef("prove needs --index N or --old-size N")
			}
			r, err := a.openAuditReader(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer r.Close()
			hashes := tlog.HashReaderFunc(r.sink.ReadHashes)
			out := map[string]any{"checkpoint": string(r.signed), "checkpoint_size": r.cp.Size}
			var proof []tlog.Hash
			if index >= 0 {
				if index >= r.cp.Size {
					return usagef("--index %d: the checkpoint covers records 0 to %d", index, r.cp.Size-1)
				}
				recs, err := r.sink.ReadRecords(index, index+1)
				if err != nil {
					return fmt.Errorf("reading record %d: %w", index, err)
				}
				p, err := tlog.ProveRecord(r.cp.Size, index, hashes)
				if err != nil {
					return fmt.Errorf("proving record %d: %w", index, err)
				}
				if err := r.verifier.VerifyRecord(r.cp, index, recs[0], p); err != nil {
					return err
				}
				rec, err := audit.ParseRecord(recs[0])
				if err != nil {
					return err
				}
				out["index"], out["record"], out["event"] = index, base64.StdEncoding.EncodeToString(recs[0]), newRecordJSON(rec)
				proof = p
			} else {
				if oldSize < 1 || oldSize > r.cp.Size {
					return usagef("--old-size %d: want 1 to %d", oldSize, r.cp.Size)
				}
				p, err := tlog.ProveTree(r.cp.Size, oldSize, hashes)
				if err != nil {
					return fmt.Errorf("proving the tree: %w", err)
				}
				out["old_size"] = oldSize
				proof = p
			}
			enc := []string{}
			for _, h := range proof {
				enc = append(enc, h.String())
			}
			out["proof"] = enc
			return a.print(out, func() {
				if index >= 0 {
					a.printf("record %d is in the checkpoint's tree of %d records; proof:\n", index, r.cp.Size)
				} else {
					a.printf("the tree of %d records extends the tree of %d; proof:\n", r.cp.Size, oldSize)
				}
				for _, h := range enc {
					a.printf("  %s\n", h)
				}
			})
		},
	}
	f.add(c)
	c.Flags().Int64Var(&index, "index", -1, "prove record `N` is in the checkpoint")
	c.Flags().Int64Var(&oldSize, "old-size", -1, "prove the checkpoint's tree extends the tree of `N` records")
	return c
}
