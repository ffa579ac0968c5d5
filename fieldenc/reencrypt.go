package fieldenc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
)

// Reencrypt moves the rows of one SQL table to the active branch key
// version: after a rotation, run it; when it reports Done, no row needs the
// old version, which can then be retired (keyring.Store.SetState). Rows are
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
	Scanned  int64  // rows read, over every run of the job
	Resealed int64  // rows moved to the active version
	After    string // the key of the last row committed
	Done     bool   // every row has been visited
}

// CheckpointTable is the table Reencrypt keeps its checkpoints in (created
// if missing; portable SQL for PostgreSQL and SQLite).
const CheckpointTable = "fieldenc_reencrypt_checkpoints"

// Run runs the job to the end, or until ctx is done or a step fails; run it
// again to continue. A finished job reports Done without reading rows;
// start a new one (a new Job name) after the next rotation.
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
		resealed BIGINT NOT NULL, done BOOLEAN NOT NULL)`); err != nil {
		return Progress{}, fmt.Errorf("fieldenc: creating %s: %w", CheckpointTable, err)
	}
	p, err := j.checkpoint(ctx)
	if err != nil {
		return p, err
	}
	t := j.Codec.b.t
	t.Refresh()
	active, err := t.ActiveVersion(ctx)
	if err != nil {
		return p, err
	}
	for !p.Done {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		next, err := j.batch(ctx, p, batch, active)
		if err != nil {
			return p, err
		}
		p = next
		if j.Progress != nil {
			j.Progress(p)
		}
	}
	return p, nil
}

func (j *Reencrypt[T]) checkpoint(ctx context.Context) (Progress, error) {
	var p Progress
	err := j.DB.QueryRowContext(ctx, `SELECT after_key, scanned, resealed, done FROM `+CheckpointTable+` WHERE job = $1`, j.Job).
		Scan(&p.After, &p.Scanned, &p.Resealed, &p.Done)
	if errors.Is(err, sql.ErrNoRows) {
		return Progress{}, nil
	}
	if err != nil {
		return p, fmt.Errorf("fieldenc: reading the checkpoint: %w", err)
	}
	return p, nil
}

// batch re-seals one batch and commits it with its checkpoint.
func (j *Reencrypt[T]) batch(ctx context.Context, p Progress, limit int, active string) (Progress, error) {
	tx, err := j.DB.BeginTx(ctx, nil)
	if err != nil {
		return p, fmt.Errorf("fieldenc: starting a batch: %w", err)
	}
	defer tx.Rollback()
	rows, err := j.Load(ctx, tx, p.After, limit)
	if err != nil {
		return p, fmt.Errorf("fieldenc: loading rows after the checkpoint: %w", err)
	}
	for i := range rows {
		row := &rows[i]
		p.Scanned++
		p.After = j.Key(row)
		moved, err := j.reseal(ctx, tx, row, active)
		if err != nil {
			return p, fmt.Errorf("fieldenc: re-sealing the row after the checkpoint: %w", err)
		}
		if moved {
			p.Resealed++
		}
	}
	p.Done = len(rows) < limit
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+CheckpointTable+` (job, after_key, scanned, resealed, done)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job) DO UPDATE SET after_key = excluded.after_key,
		scanned = excluded.scanned, resealed = excluded.resealed, done = excluded.done`,
		j.Job, p.After, p.Scanned, p.Resealed, p.Done); err != nil {
		return p, fmt.Errorf("fieldenc: saving the checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return p, fmt.Errorf("fieldenc: committing a batch: %w", err)
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
	if err := b.seal(ctx, sv); err != nil {
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
		bin, legacy, null, err := f.access.stored(fv)
		if null {
			continue
		}
		if err != nil || legacy {
			return true
		}
		p, err := parse(bin)
		if err != nil || p.ref != ref {
			return true
		}
	}
	return false
}
