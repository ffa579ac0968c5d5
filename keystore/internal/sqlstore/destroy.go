package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/phicrypt/phicrypt/keystore"
)

// sqlDestroy empties the wrapped key of versions and marks them destroyed;
// the caller adds the WHERE clause. The ciphertext is set to an empty
// value, not NULL, so the column's CHECK ties "no material" to the state.
const sqlDestroy = `UPDATE phicrypt_branch_key_versions SET ciphertext = $1, state = 'destroyed' `

// Destroy implements keystore.Store: one transaction that locks the branch
// key, reads the version's state and updates its row. The database erases
// what it overwrites as its back end says (keystore/sqlite,
// keystore/postgres).
func (s *Store) Destroy(ctx context.Context, id, version string) error {
	if err := keystore.CheckKeyVersion(id, version); err != nil {
		return err
	}
	changed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockKey(ctx, tx, id, "destroying a version"); err != nil {
			return err
		}
		cur, err := s.getVersion(ctx, tx, id, version)
		if err != nil {
			return err
		}
		switch cur.State {
		case keystore.StateDestroyed:
			return nil
		case keystore.StateActive:
			return keystore.ActiveDestroyError(id, version)
		}
		res, err := tx.ExecContext(ctx, sqlDestroy+`WHERE branch_key_id = $2 AND version = $3 AND state = $4`,
			[]byte{}, id, version, cur.State.String())
		changed = true
		return s.expectOne(res, err, "destroying a version")
	})
	if err == nil && changed {
		s.afterDestroy(ctx)
	}
	return err
}

// DestroyKey implements keystore.Store: every version in one transaction,
// so it is atomic: a crash leaves the key whole or destroyed.
func (s *Store) DestroyKey(ctx context.Context, id string) error {
	if err := keystore.CheckID(id); err != nil {
		return err
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockKey(ctx, tx, id, "destroying a branch key"); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, sqlDestroy+`WHERE branch_key_id = $2 AND state <> 'destroyed'`, []byte{}, id)
		n, err = s.affected(res, err, "destroying a branch key")
		return err
	})
	if err == nil && n > 0 {
		s.afterDestroy(ctx)
	}
	return err
}

func (s *Store) afterDestroy(ctx context.Context) {
	if s.d.AfterDestroy != "" {
		rows, err := s.db.QueryContext(ctx, s.d.AfterDestroy)
		if err == nil {
			rows.Close()
		}
	}
}

// noActive explains why branch key id has no active version: it is
// destroyed (ErrDestroyed) or does not exist (ErrNotFound).
func (s *Store) noActive(ctx context.Context, q querier, id string) error {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM phicrypt_branch_key_versions WHERE branch_key_id = $1`, id).Scan(&n)
	switch {
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return s.wrap("reading the active version", err)
	case n > 0:
		return keystore.KeyDestroyedError(id)
	}
	return keystore.NotFoundError(id)
}
