package fieldenc

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"time"
)

// Reencrypt moves the rows of one SQL table to the active branch key
// version: after a rotation, run it; when it reports Done, no row needs the
// old version, which can then be retired (keystore.Store.SetState). Rows are
// read in key order in batches, each batch and its checkpoint committed in
// one transaction, so the job can stop at any point (a crash, a deploy, a
// cancelled context) and Run again continues after the last committed row.
// Services keep reading and writing throughout: rows under either version
// open, and searches use every live version (IndexValues, EqualValues).
type Reencrypt[T any] struct {
	DB    *sql.DB
	Codec *Codec[T]
	// Job names the job's checkpoint row (one per SQL table and rotation).
	Job string
	// BatchSize is how many rows each transaction handles (default 500).
	BatchSize int
	// Load reads up to limit rows whose key sorts after `after` (every row
	// from the start when after is ""), in key order, inside tx. Use
	// SELECT ... FOR UPDATE on PostgreSQL so no writer races the rewrite.
	Load func(ctx context.Context, tx *sql.Tx, after string, limit int) ([]T, error)
	// Key returns a row's key as Load compares it.
	Key func(*T) string
	// Save writes one re-sealed row back, inside tx.
	Save func(ctx context.Context, tx *sql.Tx, row *T) error
	// Progress, if set, is called after each committed batch.
	Progress func(Progress)
}

// Progress is where a re-encryption job is.
type Progress struct {
	Scanned  int64  // rows read, over every pass and run of the job
	Resealed int64  // rows moved to the active version
	After    string // the key of the last row committed in this pass
	// Pass counts passes over the table from 1. A pass that re-sealed
	// rows is followed by another, which starts once every process has
	// seen the rotation (see Run); Done is a pass that found none.
	Pass         int64
	PassResealed int64
	Done         bool // a whole pass found every row under the active version
	passStarted  time.Time
}

// CheckpointTable is the table Reencrypt keeps its checkpoints in (created
// if missing; portable SQL for PostgreSQL and SQLite).
const CheckpointTable = "fieldenc_reencrypt_checkpoints"

// Run runs the job to the end, or until ctx is done or a step fails; run it
// again to continue. A finished job reports Done without reading rows;
// start a new one (a new Job name) after the next rotation.
//
// Every process keeps sealing under the old version until the rotation's
// propagation window has passed (keyring.Hierarchical.WritesFrom; Run
// waits for it before its first pass), and one whose cache was read just
// before may do so one cache lifetime longer, writing rows behind the
// checkpoint. So the job is Done only after a whole pass that started at
// least the window plus one cache lifetime after the active version was
// created found nothing left to re-seal; Run waits for that moment if it
// has to. Only then retire the old version.
func (j *Reencrypt[T]) Run(ctx context.Context) (Progress, error) {
	if j.DB == nil || j.Codec == nil || j.Load == nil || j.Key == nil || j.Save == nil || j.Job == "" {
		return Progress{}, errors.New("fieldenc: Reencrypt needs DB, Codec, Job, Load, Key and Save")
	}
	batch := j.BatchSize
	if batch <= 0 {
		batch = 500
	}
	if _, err := j.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+CheckpointTable+` (
		job TEXT PRIMARY KEY, after_key TEXT NOT NULL, scanned BIGINT NOT NULL,
		resealed BIGINT NOT NULL, pass BIGINT NOT NULL, pass_resealed BIGINT NOT NULL,
		pass_started BIGINT NOT NULL, done BOOLEAN NOT NULL)`); err != nil {
		return Progress{}, wrap("creating "+CheckpointTable, err)
	}
	p, err := j.checkpoint(ctx)
	if err != nil {
		return p, err
	}
	if p.Done {
		return p, nil
	}
	t := j.Codec.b.t
	t.Refresh()
	live, err := t.cfg.Keys.LiveVersions(ctx, t.cfg.BranchKeyID)
	if err != nil {
		return p, wrap("reading the active version", err)
	}
	if len(live) == 0 {
		return p, ErrUnknownKey
	}
	active := live[0].Version
	// Writers move to the active version one propagation window after it
	// was made, and every process has read the active version again one
	// CacheTTL later: only then can no late writer use an older one.
	takeover := t.cfg.Keys.WritesFrom(live[0])
	settled := takeover.Add(t.cfg.Keys.CacheTTL())
	if err := sleepUntil(ctx, takeover); err != nil { // until then, Seal writes the old version
		return p, err
	}
	if p.Pass == 0 {
		p.Pass, p.passStarted = 1, time.Now()
	}
	for !p.Done {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		next, err := j.batch(ctx, p, batch, active, settled)
		if err != nil {
			return p, err
		}
		p = next
		if j.Progress != nil {
			j.Progress(p)
		}
		if p.After == "" && !p.Done { // a new pass begins: after the settling time
			if err := sleepUntil(ctx, settled); err != nil {
				return p, err
			}
			p.passStarted = time.Now()
		}
	}
	return p, nil
}

func sleepUntil(ctx context.Context, when time.Time) error {
	d := time.Until(when)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func (j *Reencrypt[T]) checkpoint(ctx context.Context) (Progress, error) {
	var p Progress
	var started int64
	err := j.DB.QueryRowContext(ctx, `SELECT after_key, scanned, resealed, pass, pass_resealed, pass_started, done FROM `+CheckpointTable+` WHERE job = $1`, j.Job).
		Scan(&p.After, &p.Scanned, &p.Resealed, &p.Pass, &p.PassResealed, &started, &p.Done)
	p.passStarted = time.Unix(0, started)
	if errors.Is(err, sql.ErrNoRows) {
		return Progress{}, nil
	}
	if err != nil {
		return p, wrap("reading the checkpoint", err)
	}
	return p, nil
}

// batch re-seals one batch and commits it with its checkpoint; at the end
// of a pass it decides whether the job is done or starts the next pass.
func (j *Reencrypt[T]) batch(ctx context.Context, p Progress, limit int, active string, settled time.Time) (Progress, error) {
	tx, err := j.DB.BeginTx(ctx, nil)
	if err != nil {
		return p, wrap("starting a batch", err)
	}
	defer tx.Rollback()
	rows, err := j.Load(ctx, tx, p.After, limit)
	if err != nil {
		return p, wrap("loading rows after the checkpoint", err)
	}
	for i := range rows {
		row := &rows[i]
		p.Scanned++
		p.After = j.Key(row)
		moved, err := j.reseal(ctx, tx, row, active)
		if err != nil {
			return p, wrap("re-sealing the row after the checkpoint", err)
		}
		if moved {
			p.Resealed++
			p.PassResealed++
		}
	}
	if len(rows) < limit { // the end of a pass
		if p.PassResealed == 0 && !p.passStarted.Before(settled) {
			p.Done = true
		} else {
			p.Pass, p.PassResealed, p.After = p.Pass+1, 0, ""
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+CheckpointTable+` (job, after_key, scanned, resealed, pass, pass_resealed, pass_started, done)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (job) DO UPDATE SET after_key = excluded.after_key,
		scanned = excluded.scanned, resealed = excluded.resealed, pass = excluded.pass,
		pass_resealed = excluded.pass_resealed, pass_started = excluded.pass_started, done = excluded.done`,
		j.Job, p.After, p.Scanned, p.Resealed, p.Pass, p.PassResealed, p.passStarted.UnixNano(), p.Done); err != nil {
		return p, wrap("saving the checkpoint", err)
	}
	if err := tx.Commit(); err != nil {
		return p, wrap("committing a batch", err)
	}
	return p, nil
}

// reseal opens and re-seals row if any field is not under the active
// version; it reports whether it wrote the row.
func (j *Reencrypt[T]) reseal(ctx context.Context, tx *sql.Tx, row *T, active string) (bool, error) {
	ref, err := refOf(active)
	if err != nil {
		return false, err
	}
	b := j.Codec.b
	sv := reflect.ValueOf(row).Elem()
	if !b.stale(sv, ref) {
		return false, nil
	}
	if err := b.open(ctx, sv); err != nil {
		return false, err
	}
	if _, err := b.seal(ctx, sv, nil); err != nil {
		return false, err
	}
	if b.stale(sv, ref) {
		return false, errors.New("fieldenc: the keyring still seals under an older version; wait for its cache lifetime and run again")
	}
	return true, j.Save(ctx, tx, row)
}

// stale reports whether any sealed field of sv is under another version
// than ref, or holds legacy plaintext.
func (b *bound) stale(sv reflect.Value, ref keyRef) bool {
	for _, f := range b.p.fields {
		fv, ok := field(sv, f)
		if !ok {
			continue
		}
		bin, legacy, null := f.access.stored(fv)
		if null {
			continue
		}
		if legacy {
			return true
		}
		p, err := parse(bin)
		if err != nil || p.ref != ref {
			return true
		}
	}
	return false
}
