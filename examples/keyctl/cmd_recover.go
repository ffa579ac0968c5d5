package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// Break-glass recovery: a recover request (propose recover), approved by
// the quorum for recover of every installed policy, and M custodians'
// escrow shares let keyctl recover reassemble the escrow private key in
// memory (custody.AuthorizeRecovery) and rewrite the header of each
// message in a directory so that its data key is wrapped by the request's
// KMS key (and the escrow public key again) instead of its old keys: the
// body is not touched and no plaintext is produced. A position file lets
// an interrupted recovery resume under the same authorization.

const (
	// recordRecoverFinished marks a recover request that ran to its end
	// (name: the request id): its position file can never resume it.
	recordRecoverFinished = "keyctl-recover-finished"
	// maxRecoverMessages caps the messages one recovery walks.
	maxRecoverMessages = 1 << 24
	// maxShareFileBytes caps a share file (a PEM share is under 1 KiB).
	maxShareFileBytes = 8 << 10
	// recoverMaxEDKs caps the encrypted data keys of a message recover
	// reads. Services raise phicrypt.Config.MaxEncryptedDataKeys past its
	// default for threshold keyrings (up to 255 shares) and several
	// regions, and their messages must stay recoverable; the cap only
	// bounds work here, since the escrow keyring calls no KMS and opens
	// only the EDKs of its own key name.
	recoverMaxEDKs = 256
)

// recoverPosition is the position file (JSON, mode 0600): the request
// under way and the last message done, in sorted order of paths relative
// to the messages directory.
type recoverPosition struct {
	Request string `json:"request"` // the request id in hex
	Last    string `json:"last,omitempty"`
	Done    int    `json:"done"`
	// DoneSHA256 is doneDigest of the messages done, in hex: a resume
	// skips the messages up to Last only if they are still exactly
	// those, from the same sources.
	DoneSHA256 string `json:"done_sha256,omitempty"`
}

type recoverFlags struct {
	shares     []string
	messages   string
	position   string
	s3         string
	s3Endpoint string
	s3Profile  string
	branchKeys branchKeyRecoverFlags
}

func (a *app) recoverCommand() *cobra.Command {
	var f recoverFlags
	c := &cobra.Command{
		Use:   "recover FILE... --share FILE... --messages DIR",
		Short: "break glass: with a quorum-approved recover request and M escrow shares, rewrap messages' data keys to a new KMS key (headers only), resumable",
		Long: `recover carries out the recover request in FILE (several copies of one
request are merged, as apply does): "keyctl propose recover --escrow NAME
--to ARN -o FILE", approved by the quorum for recover of every installed
trust policy. It checks the --share files (at least M shares of escrow key
NAME, each intact and of that key), has custody.Authority authorize the
request (approvals, quorum, expiry, replay; audited with the approvers),
and only then reassembles the escrow private key, in memory.

Then it rewrites every message file under --messages (sorted by path;
names starting with "." are skipped) and every object under --s3: each
header is authenticated with the escrow key and replaced by one whose data
key is wrapped by the KMS key ARN and again by the escrow public key; the
body is copied unchanged (a message of the signed suite is signed again by
a new key, after its old signature is checked; S3 objects by
s3crypt.Client.Rewrap, conditional on the object not changing meanwhile),
and the file is replaced atomically.
No plaintext is produced. The custodian
needs kms:Encrypt on ARN (and nothing else of it).

With --branch-keys (or --branch-key ID), it first moves the store's branch
key versions to ARN from their escrow copies (custody.RecoverBranchKeys;
"keyctl escrow status NAME" shows which versions have one), then rotates
every branch key whose active version was recovered (--no-rotate: not, and
services refuse to write under those keys until they are rotated; the
rotation also needs kms:GenerateDataKeyWithoutPlaintext on ARN). Versions
without a copy, or with one that does not open, are named and the request
stays open to run again.

Progress shows as a bar on a terminal and as plain lines otherwise. The
position is saved to --position; after an interruption, run the same
command again (same request file, same shares) and it resumes there under
the same authorization, while the request has not expired. Every step goes
to the audit log with the approvers: the authorization, the key's
reassembly, the messages rewrapped, and every refusal.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > custody.MaxApprovals {
				return usagef("want 1 to %d change files", custody.MaxApprovals)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return a.recover(cmd.Context(), args, f) },
	}
	fl := c.Flags()
	fl.StringArrayVar(&f.shares, "share", nil, "a custodian's escrow share `FILE` (repeat; at least M)")
	fl.StringVar(&f.messages, "messages", "", "rewrap the message files under `DIR` in place")
	fl.StringVar(&f.s3, "s3", "", "rewrap the s3crypt objects under `s3://BUCKET/PREFIX` in place (s3crypt.Client.Rewrap)")
	fl.StringVar(&f.s3Endpoint, "s3-endpoint", "", "send S3 calls to `URL` (MinIO, a VPC endpoint; path-style addressing)")
	fl.StringVar(&f.s3Profile, "s3-profile", "", "sign S3 calls with the shared-configuration `PROFILE` (default: the credentials KMS calls use)")
	f.branchKeys.register(fl)
	fl.StringVar(&f.position, "position", "", "save and resume the position in `FILE` (default: recover.position beside the configuration)")
	return c
}

// recoverView is what recover prints.
type recoverView struct {
	Request   string   `json:"request"`
	Escrow    string   `json:"escrow_key"`
	To        string   `json:"to"`
	Approvers []string `json:"approvers"`
	Total     int      `json:"total"`
	Rewrapped int      `json:"rewrapped"`
	Resumed   int      `json:"skipped_on_resume"`
	// BranchKeys is what --branch-keys did (recover_branchkeys.go).
	BranchKeys *branchKeyRecoveryView `json:"branch_keys,omitempty"`
}

func (a *app) recover(ctx context.Context, args []string, f recoverFlags) error {
	cf, err := mergeChangeFiles(args)
	if err != nil {
		return err
	}
	r := cf.Request
	// The session is opened once the change files parse, so that every
	// refusal from here on, usage errors included, is audited.
	s, err := a.open(ctx, needs{store: true, kms: true, audit: true, identity: true})
	if err != nil {
		return err
	}
	defer s.Close()
	deny := func(err error) error {
		return errors.Join(err, s.audit.record(s.audit.hasher.Denial(time.Now(), s.actor, "recover", "", custody.Reason(err))))
	}
	if err := checkRecoverArgs(args, r, f); err != nil {
		return deny(err)
	}
	src := &recoverSources{}
	if f.messages != "" || f.s3 != "" {
		if src, err = openSources(ctx, s, f); err != nil {
			return deny(err)
		}
	}
	if err := checkBranchKeys(ctx, s, f.branchKeys); err != nil {
		return deny(err)
	}
	files := src.items
	shares, err := readShareFiles(f.shares)
	defer func() {
		for _, sh := range shares {
			sh.Wipe()
		}
	}()
	if err != nil {
		return deny(err)
	}
	id := cf.id()
	posPath := f.position
	if posPath == "" {
		cfgPath, _ := a.configFile()
		posPath = filepath.Join(filepath.Dir(cfgPath), "recover.position")
	}
	pos, err := readRecoverPosition(posPath, id)
	if err != nil {
		return deny(err)
	}
	var approvers []string
	var key *keyring.HPKEEscrowPrivateKey
	if pos != nil {
		approvers, key, err = resumeRecovery(ctx, s, r, shares)
	} else {
		// The position is written before the request is spent: a path
		// that cannot be written is refused while the request still
		// holds, and a run stopped right after the authorization has a
		// position to resume from. A refused authorization removes it.
		pos = &recoverPosition{Request: id}
		if err := writeJSONPrivate(posPath, pos); err != nil {
			return deny(err)
		}
		approvers, key, err = authorizeRecovery(ctx, s, cf, shares)
		if err != nil {
			if rerr := os.Remove(posPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	}
	if err != nil {
		return nameShareFiles(err, f.shares, shares)
	}
	for _, sh := range shares {
		sh.Wipe()
	}
	view := recoverView{Request: id, Escrow: custody.EscrowKeyFingerprint(r.EscrowKey), To: r.KMSKeyARN, Approvers: approvers, Total: len(files)}
	// The escrow key lives only in these calls of recoverBranchKeys and
	// rewrapMessages and the keyrings they make; nothing refers to it
	// afterwards.
	err = a.recoverBranchKeys(ctx, s, r, key, shares[0].Name(), approvers, f.branchKeys, &view)
	if len(files) > 0 && messagesAfterBranchKeys(err) {
		err = errors.Join(err, a.rewrapMessages(ctx, s, r, key, shares[0].Name(), src, pos, posPath, &view))
	}
	if err := a.finishRecovery(ctx, s, r, id, approvers, pos, posPath, &view, err); err != nil {
		return err
	}
	return a.print(view, func() {
		a.printf("recovered %d message(s) of %d to %s (%d done before resuming), request %s approved by %s; the escrow key was dropped\n",
			view.Rewrapped, view.Total, view.To, view.Resumed, id, strings.Join(approvers, ", "))
	})
}

// checkRecoverArgs refuses a change file of another action and flags
// that cannot make a recovery.
func checkRecoverArgs(args []string, r *custody.Request, f recoverFlags) error {
	if r.Action != custody.ActionRecover {
		return usagef("%s holds a %s request, not recover", args[0], r.Action)
	}
	if len(f.shares) == 0 || f.messages == "" && f.s3 == "" && !f.branchKeys.on() {
		return usagef("recover needs --share FILE (at least M of them), and --messages DIR, --s3 s3://BUCKET/PREFIX or --branch-keys")
	}
	if len(f.shares) > custody.MaxEscrowShares {
		return usagef("at most %d --share files", custody.MaxEscrowShares)
	}
	return nil
}

// authorizeRecovery has the Authority authorize the request and reassemble
// the key.
func authorizeRecovery(ctx context.Context, s *session, cf *changeFile, shares []*custody.EscrowShare) ([]string, *keyring.HPKEEscrowPrivateKey, error) {
	auth, err := s.authority()
	if err != nil {
		return nil, nil, err
	}
	a, key, err := auth.AuthorizeRecovery(ctx, cf.Request, cf.Approvals, shares)
	if err != nil {
		return nil, nil, err
	}
	return a.Approvers, key, nil
}

// resumeRecovery reassembles the key for a recovery the store shows was
// authorized and has not finished, while its request has not expired.
func resumeRecovery(ctx context.Context, s *session, r *custody.Request, shares []*custody.EscrowShare) ([]string, *keyring.HPKEEscrowPrivateKey, error) {
	deny := func(err error) error {
		return errors.Join(err, s.audit.record(s.audit.hasher.Denial(time.Now(), s.actor, "resume recover", "", custody.Reason(err))))
	}
	id, err := r.ID()
	if err != nil {
		return nil, nil, err
	}
	if !time.Now().Before(r.Expiry) {
		return nil, nil, deny(fmt.Errorf("%w: the recovery's approval expired at %s; propose it again", custody.ErrExpired, r.Expiry.UTC().Format(time.RFC3339)))
	}
	if _, err := s.records().GetRecord(ctx, recordRecoverFinished, id.String()); err == nil {
		return nil, nil, deny(fmt.Errorf("%w: recover request %s has finished; propose a new one", custody.ErrReplayed, id))
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return nil, nil, err
	}
	auth, err := s.authority()
	if err != nil {
		return nil, nil, err
	}
	// The approval holds only while the policies in force now would
	// authorize it as they did (custody.Authority.StillHolds: the "*"
	// policy unchanged, the approvals reaching the quorum of every
	// installed policy), and only a custodian of it (by name and key)
	// resumes.
	held, err := auth.StillHolds(ctx, id)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil, deny(fmt.Errorf("the position file names request %s, which this store never authorized: %w", id, err))
	}
	if err != nil {
		return nil, nil, deny(fmt.Errorf("the recovery no longer holds under the trust policies in force (changed or installed since it was approved); propose it again: %w", err))
	}
	approvers, p := held.Approvers, held.Policy
	if !isCustodian(p, s.me.Name, s.me.public()) {
		return nil, nil, deny(fmt.Errorf("%w: resuming a recovery takes a custodian of its policy (by name and key)", custody.ErrNotCustodian))
	}
	key, err := custody.CombineEscrowShares(shares, r.EscrowKey)
	if err != nil {
		return nil, nil, deny(err)
	}
	e := s.audit.hasher.AdminChange(time.Now(), s.actor, "recover: resumed, escrow key reassembled", "", approvers)
	e.Reason = "request " + id.String() + ", escrow " + custody.EscrowKeyFingerprint(r.EscrowKey)
	if err := s.audit.record(e); err != nil {
		return nil, nil, err
	}
	return approvers, key, nil
}

// rewrapMessages rewraps every file after pos, saving the position.
func (a *app) rewrapMessages(ctx context.Context, s *session, r *custody.Request, key *keyring.HPKEEscrowPrivateKey, name string,
	src *recoverSources, pos *recoverPosition, posPath string, view *recoverView) error {
	files := src.items
	recovery, err := keyring.NewHPKEEscrowRecovery(name, key)
	if err != nil {
		return err
	}
	from, err := phicrypt.New(phicrypt.Config{Keyring: recovery, MaxEncryptedDataKeys: recoverMaxEDKs})
	if err != nil {
		return err
	}
	to, err := recoveryTarget(s, r, name, key)
	if err != nil {
		return err
	}
	var objects *s3crypt.Client
	if src.s3 != nil {
		if objects, err = s3crypt.New(s3crypt.Config{S3: src.s3, Encryptor: from}); err != nil {
			return err
		}
	}
	prog, err := a.newProgress("recover", "messages")
	if err != nil {
		return err
	}
	defer prog.Finish()
	// A resume skips what was done only if the messages up to Last are
	// the ones done then: a message that appeared since (sorting before
	// Last) or other sources would otherwise be skipped and reported as
	// recovered. If they differ, every message is rewrapped again, which
	// is safe: a rewrapped message keeps its escrow data key.
	if pos.Last != "" {
		var upto []string
		for _, rel := range files {
			if rel <= pos.Last {
				upto = append(upto, rel)
			}
		}
		if d := doneDigest(src, upto); d.sum() != pos.DoneSHA256 {
			pos.Last, pos.Done = "", 0
		}
	}
	done := doneDigest(src, nil)
	var saved time.Time
	for i, rel := range files {
		if pos.Last != "" && rel <= pos.Last {
			done.add(rel)
			view.Resumed++
			prog.Set(i+1, len(files))
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := src.rewrap(ctx, from, objects, to, rel); err != nil {
			return fmt.Errorf("message %s: %w", rel, err)
		}
		view.Rewrapped++
		done.add(rel)
		pos.Last, pos.Done, pos.DoneSHA256 = rel, pos.Done+1, done.sum()
		prog.Set(i+1, len(files))
		if time.Since(saved) >= checkpointEvery {
			saved = time.Now()
			if err := writeJSONPrivate(posPath, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

// recoveryTarget wraps the data keys to the request's KMS key and, so
// that the messages stay recoverable, to the escrow public key again.
func recoveryTarget(s *session, r *custody.Request, name string, key *keyring.HPKEEscrowPrivateKey) (keyring.Keyring, error) {
	kmsKeyring, err := keyring.NewKMS(keyring.KMSConfig{Client: s.kms, Keys: []string{r.KMSKeyARN}})
	if err != nil {
		return nil, err
	}
	escrow, err := keyring.NewHPKEEscrow(name, key.PublicKey())
	if err != nil {
		return nil, err
	}
	return keyring.NewMulti(nil, kmsKeyring, escrow)
}

// rewrapFile replaces the header of the message in path with one that
// wraps its data key with to, copying the body unchanged (and, for a
// signed message, a new footer), atomically.
func rewrapFile(ctx context.Context, from *phicrypt.Encryptor, to keyring.Keyring, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	prefix := make([]byte, min(fi.Size(), phicrypt.DefaultMaxHeaderBytes))
	if _, err := io.ReadFull(f, prefix); err != nil {
		return err
	}
	hl, err := from.HeaderLength(prefix)
	if err != nil {
		return err
	}
	// An unsigned message keeps its body and footer as they are; a signed
	// one is signed anew (phicrypt.RewrapSigned: the old signature is
	// checked over the body as it is copied, and a new key pair signs it).
	header, err := from.RewrapHeader(ctx, prefix[:hl], nil, to)
	var signed *phicrypt.SignedRewrap
	if errors.Is(err, phicrypt.ErrSignedRewrap) {
		if signed, err = from.RewrapSigned(ctx, prefix[:hl], nil, to); err == nil {
			header = signed.Header()
		}
	}
	if err != nil {
		return err
	}
	if _, err := f.Seek(int64(hl), io.SeekStart); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyctl-recover-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = keepOwner(tmp, fi)
	if err == nil {
		err = tmp.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		_, err = tmp.Write(header)
	}
	if err == nil && signed != nil {
		err = signed.CopyBody(tmp, f)
	} else if err == nil {
		_, err = io.Copy(tmp, f)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// finishRecovery audits the outcome with the approvers: a finished
// recovery is recorded in the store and its position file removed; an
// interrupted one keeps its position for a resume.
func (a *app) finishRecovery(ctx context.Context, s *session, r *custody.Request, id string, approvers []string, pos *recoverPosition, posPath string, view *recoverView, runErr error) error {
	op := "recover: data keys rewrapped, escrow key dropped"
	if runErr != nil {
		op = "recover: interrupted, escrow key dropped"
	}
	e := s.audit.hasher.AdminChange(time.Now(), s.actor, op, "", approvers)
	e.Reason = fmt.Sprintf("request %s: %d of %d messages rewrapped (%d before resuming) to %s", id, view.Rewrapped, view.Total, view.Resumed, kmsKeyID(r.KMSKeyARN))
	if err := s.audit.record(e); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr != nil {
		if err := writeJSONPrivate(posPath, pos); err != nil {
			return errors.Join(runErr, err)
		}
		return fmt.Errorf("%w (the position is saved: run the same keyctl recover again to resume)", runErr)
	}
	if _, err := s.records().PutRecord(ctx, recordRecoverFinished, id, []byte{1}, 0); err != nil && !errors.Is(err, keystore.ErrExists) {
		return fmt.Errorf("the recovery finished but could not be recorded as finished: %w", err)
	}
	if err := os.Remove(posPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// kmsKeyID is the key part of a KMS key ARN ("key/ID"), short enough for
// an audit record's reason.
func kmsKeyID(arn string) string {
	if i := strings.LastIndex(arn, ":"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// messageFiles lists the regular files under dir, relative and sorted,
// skipping names that start with ".".
func messageFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if len(out) == maxRecoverMessages {
			return fmt.Errorf("more than %d message files under %s: recover them in parts", maxRecoverMessages, dir)
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the messages: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// readShareFiles reads and decodes the share files; an error names the
// file, never its contents.
func readShareFiles(paths []string) ([]*custody.EscrowShare, error) {
	var out []*custody.EscrowShare
	for _, p := range paths {
		sh, err := readShareFile(p)
		if err != nil {
			return out, fmt.Errorf("share file %s: %w", p, err)
		}
		out = append(out, sh)
	}
	return out, nil
}

// nameShareFiles adds to a refusal of the shares (custody names them by
// index) which file holds which share, so the operator knows which file
// to set aside.
func nameShareFiles(err error, paths []string, shares []*custody.EscrowShare) error {
	if !errors.Is(err, custody.ErrEscrowShare) && !errors.Is(err, custody.ErrTooFewShares) && !errors.Is(err, custody.ErrEscrowKeyMismatch) {
		return err
	}
	files := make([]string, len(shares))
	for i, sh := range shares {
		files[i] = "share " + strconv.Itoa(sh.Index()) + " in " + paths[i]
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(files, ", "))
}

func readShareFile(path string) (*custody.EscrowShare, error) {
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if len(b) > maxShareFileBytes {
		return nil, fmt.Errorf("%w: larger than a share file can be", custody.ErrEscrowShare)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemEscrowShare || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: not a keyctl escrow share file (one PEM block, %s)", custody.ErrEscrowShare, pemEscrowShare)
	}
	defer clear(block.Bytes)
	return custody.ParseEscrowShare(block.Bytes)
}

// escrowDigest is the digest of the escrow key the store records under
// name.
func escrowDigest(ctx context.Context, s *session, name string) ([32]byte, error) {
	rec, err := s.records().GetRecord(ctx, recordEscrow, name)
	if err != nil {
		return [32]byte{}, fmt.Errorf("escrow key %q is not in the store (keyctl escrow init makes one): %w", name, err)
	}
	if len(rec.Value) != 34 {
		return [32]byte{}, fmt.Errorf("the store's record of escrow key %q is malformed", name)
	}
	return [32]byte(rec.Value[:32]), nil
}

// readRecoverPosition returns the position of an unfinished recovery of
// request id (nil if none), refusing a position of another request.
func readRecoverPosition(path, id string) (*recoverPosition, error) {
	b, err := readSmallFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the recover position: %w", err)
	}
	var p recoverPosition
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s is not a recover position file", path)
	}
	if _, err := hex.DecodeString(p.Request); err != nil || p.Request != id {
		return nil, usagef("the position file %s is of another recovery (request %.16s); finish that one, or give another --position", path, p.Request)
	}
	return &p, nil
}

func writeJSONPrivate(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the recover position: %w", err)
	}
	return nil
}

// doneHash hashes the sources of a recovery and the names of the
// messages done (SHA-256, each name length-prefixed).
type doneHash struct{ h hash.Hash }

// doneDigest starts a doneHash of src's sources and adds names.
func doneDigest(src *recoverSources, names []string) doneHash {
	d := doneHash{sha256.New()}
	dir := src.dir
	if abs, err := filepath.Abs(dir); err == nil && dir != "" {
		dir = abs
	}
	d.add(dir)
	d.add(src.bucket)
	for _, n := range names {
		d.add(n)
	}
	return d
}

func (d doneHash) add(name string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	d.h.Write(n[:])
	d.h.Write([]byte(name))
}

func (d doneHash) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }
