package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	_ "modernc.org/sqlite"
)

// Patient is a row of the patients table. Every encrypted field is a
// Sealed value: it redacts itself when printed, and refuses to be written
// to the database unsealed, so a failed Seal cannot store plaintext. The
// blind index lets the service find a patient by SSN without the database
// ever seeing one.
type Patient struct {
	ID       string                     `phi:"rowid"`
	Name     fieldenc.Sealed[string]    `phi:"encrypt"`
	SSN      fieldenc.Sealed[string]    `phi:"encrypt,blindindex=ssn_bidx:16,normalize=digits"`
	SSNIndex []byte                     `phi:"index=ssn_bidx"`
	MRN      fieldenc.Sealed[string]    `phi:"encrypt,deterministic"`
	DOB      fieldenc.Sealed[time.Time] `phi:"encrypt"`
}

// patients seals a patient into SQLite, finds it by blind index, and prints
// the row as stored and as opened (made-up demo data).
func patients(ctx context.Context, out io.Writer, client *kms.Client, keyARN string) error {
	dir, err := os.MkdirTemp("", "phicrypt-quickstart-fields-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	cfg := keyring.BranchKeysConfig{Store: store, Client: client, KMSKeyARN: keyARN, LogicalStoreName: "quickstart-fields"}
	custodian, err := custody.NewBranchKeys(cfg)
	if err != nil {
		return err
	}
	if _, err := custodian.CreateBranchKey(ctx, "patients-app"); err != nil {
		return err
	}
	bk, err := keyring.NewBranchKeys(cfg)
	if err != nil {
		return err
	}
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: "patients-app",
		CacheTTL: time.Minute, MaxUsesPerVersion: 1 << 32})
	if err != nil {
		return err
	}
	table, err := fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: "patients-app", Table: "patients"})
	if err != nil {
		return err
	}
	codec, err := fieldenc.NewCodec[Patient](table)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "patients.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE patients (id TEXT PRIMARY KEY, name TEXT, ssn TEXT, ssn_bidx BLOB, mrn TEXT, dob TEXT)`); err != nil {
		return err
	}

	p := Patient{ID: "p-0001", Name: fieldenc.Of("Ada Lovelace"), SSN: fieldenc.Of("078-05-1120"), MRN: fieldenc.Of("MRN-000042"),
		DOB: fieldenc.Of(time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC))}
	fmt.Fprintf(out, "13. fieldenc: a patient before sealing prints as %v\n", p)
	if err := codec.Seal(ctx, &p); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO patients VALUES ($1, $2, $3, $4, $5, $6)`, p.ID, p.Name, p.SSN, p.SSNIndex, p.MRN, p.DOB); err != nil {
		return err
	}

	idx, err := codec.IndexValues(ctx, "ssn_bidx", "078051120")
	if err != nil {
		return err
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(idx)), ", ")
	rows, err := db.QueryContext(ctx, `SELECT id, name, ssn, ssn_bidx, mrn, dob FROM patients WHERE ssn_bidx IN (`+marks+`)`, idx...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r Patient
		var name, ssn, mrn, dob string
		if err := rows.Scan(&r.ID, &name, &ssn, &r.SSNIndex, &mrn, &dob); err != nil {
			return err
		}
		fmt.Fprintf(out, "14. found it by blind index %x (SSN digits, 16 bits); the row as stored in SQLite:\n", r.SSNIndex)
		fmt.Fprintf(out, "      id=%s\n      name=%s\n      ssn=%s\n      mrn=%s\n      dob=%s\n", r.ID, name, ssn, mrn, dob)
		for dst, src := range map[*fieldenc.Sealed[string]]string{&r.Name: name, &r.SSN: ssn, &r.MRN: mrn} {
			if err := dst.Scan(src); err != nil {
				return err
			}
		}
		if err := r.DOB.Scan(dob); err != nil {
			return err
		}
		if err := codec.Open(ctx, &r); err != nil {
			return err
		}
		n, _ := r.Name.Get()
		s, _ := r.SSN.Get()
		m, _ := r.MRN.Get()
		d, _ := r.DOB.Get()
		fmt.Fprintf(out, "15. opened: name=%s ssn=%s mrn=%s dob=%s (printed with %%v it stays %v)\n", n, s, m, d.Format(time.DateOnly), r.Name)
	}
	return rows.Err()
}
