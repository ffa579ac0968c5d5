package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/phicrypt/phicrypt/keystore"
)

// Records live in tables of their own: those of the per-version kinds
// (keystore.IsVersionRecordKind: branch-key escrow copies, recovery marks)
// in phicrypt_version_records, made by schema 5, and every other kind in
// phicrypt_records, made by schema 3:
//
//	phicrypt_records, phicrypt_version_records:
//	    (kind, name, value, revision, updated_at_us), primary key (kind, name)
//
// with CHECK constraints for the caps (and, on phicrypt_version_records,
// for the "version-" prefix). Two tables, so that a database role may be
// given the one without the other: a service writes its escrow copies,
// and only custodians write policies and change requests
// (keystore/postgres.GrantStatements). Each write is one statement, atomic
// on its own whatever other connections do: an INSERT ... ON CONFLICT DO
// NOTHING for a new record, an UPDATE conditioned on the revision for the
// next one. At PostgreSQL's READ COMMITTED, an UPDATE that waited for a
// concurrent one re-checks its condition against the row that one
// committed, so of several puts from one revision exactly one wins. A
// record is never deleted, so a put that changed nothing is explained
// exactly by reading the row afterwards.

var (
	_ keystore.Records          = (*Store)(nil)
	_ keystore.RecordKindLister = (*Store)(nil)
)

const sqlRecordColumns = `kind, name, value, revision, updated_at_us`

// recordTable is the table that keeps the records of kind.
func recordTable(kind string) string {
	if keystore.IsVersionRecordKind(kind) {
		return "phicrypt_version_records"
	}
	return "phicrypt_records"
}

// GetRecord implements keystore.Records.
func (s *Store) GetRecord(ctx context.Context, kind, name string) (keystore.Record, error) {
	if err := keystore.CheckRecordKey(kind, name); err != nil {
		return keystore.Record{}, err
	}
	row := s.db.QueryRowContext(ctx, `SELECT `+sqlRecordColumns+` FROM `+recordTable(kind)+` WHERE kind = $1 AND name = $2`, kind, name)
	r, err := s.scanRecord(row, kind)
	if errors.Is(err, sql.ErrNoRows) {
		return keystore.Record{}, keystore.RecordNotFoundError(kind, name)
	}
	return r, err
}

// PutRecord implements keystore.Records.
func (s *Store) PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error) {
	if err := keystore.CheckPutRecord(kind, name, value, expected); err != nil {
		return 0, err
	}
	now := keystore.RecordNow().UnixMicro()
	var res sql.Result
	var err error
	if expected == 0 {
		res, err = s.db.ExecContext(ctx, `INSERT INTO `+recordTable(kind)+` (`+sqlRecordColumns+`) VALUES ($1, $2, $3, 1, $4)
			ON CONFLICT (kind, name) DO NOTHING`, kind, name, value, now)
	} else {
		res, err = s.db.ExecContext(ctx, `UPDATE `+recordTable(kind)+` SET value = $1, revision = revision + 1, updated_at_us = $2
			WHERE kind = $3 AND name = $4 AND revision = $5`, value, now, kind, name, int64(expected))
	}
	n, err := s.affected(res, err, "storing a record")
	if err != nil {
		return 0, err
	}
	if n == 1 {
		return expected + 1, nil
	}
	if expected == 0 {
		return 0, keystore.RecordExistsError(kind, name)
	}
	if _, err := s.GetRecord(ctx, kind, name); err != nil {
		return 0, err // ErrNotFound
	}
	return 0, keystore.RecordConflictError(kind, name, expected)
}

// ListRecords implements keystore.Records. It reads one row past the cap,
// so a kind over it is refused without reading the rest.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]keystore.Record, error) {
	if err := keystore.CheckRecordKind(kind); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sqlRecordColumns+` FROM `+recordTable(kind)+` WHERE kind = $1 LIMIT $2`,
		kind, keystore.MaxListedRecords+1)
	if err != nil {
		return nil, s.wrap("listing records", err)
	}
	defer rows.Close()
	out := []keystore.Record{}
	for rows.Next() {
		if len(out) == keystore.MaxListedRecords {
			return nil, keystore.TooManyRecordsError(kind, keystore.MaxListedRecords)
		}
		r, err := s.scanRecord(rows, kind)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("listing records", err)
	}
	// Bytewise, whatever the database's collation.
	slices.SortFunc(out, func(a, b keystore.Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RecordKinds implements keystore.RecordKindLister: the kinds of both
// tables (UNION drops duplicates; a kind lives in one table only).
func (s *Store) RecordKinds(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind FROM phicrypt_records UNION SELECT kind FROM phicrypt_version_records
		ORDER BY kind LIMIT $1`, keystore.MaxRecordKinds+1)
	if err != nil {
		return nil, s.wrap("listing record kinds", err)
	}
	defer rows.Close()
	kinds := []string{}
	for rows.Next() {
		var kind string
		if err := rows.Scan(&kind); err != nil {
			return nil, s.wrap("listing record kinds", err)
		}
		if err := keystore.CheckRecordKind(kind); err != nil {
			return nil, s.damagedRecord("a record kind", err.Error())
		}
		kinds = append(kinds, kind)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("listing record kinds", err)
	}
	if len(kinds) > keystore.MaxRecordKinds {
		return nil, keystore.TooManyRecordKindsError()
	}
	slices.Sort(kinds) // bytewise, whatever the database's collation
	return kinds, nil
}

// scanRecord reads one row of sqlRecordColumns of kind, refusing a row no
// write of this store could have made. It returns sql.ErrNoRows unwrapped.
func (s *Store) scanRecord(r rowScanner, kind string) (keystore.Record, error) {
	var rec keystore.Record
	var revision, updated int64
	if err := r.Scan(&rec.Kind, &rec.Name, &rec.Value, &revision, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return keystore.Record{}, err
		}
		return keystore.Record{}, s.wrap("reading a record", err)
	}
	ref := keystore.RecordRef(kind, rec.Name)
	if revision < 1 || rec.Kind != kind {
		return keystore.Record{}, s.damagedRecord(ref, "its revision is below 1 or its kind differs")
	}
	rec.Revision = uint64(revision)
	rec.UpdatedAt = time.UnixMicro(updated).UTC()
	if err := rec.Validate(); err != nil {
		return keystore.Record{}, s.damagedRecord(ref, err.Error())
	}
	return rec, nil
}

func (s *Store) damagedRecord(ref, what string) error {
	return errors.New("keystore: " + s.d.Name + " store: " + ref + " is damaged: " + what)
}
