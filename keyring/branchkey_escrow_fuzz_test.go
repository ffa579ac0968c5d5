package keyring

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// escrowRecordSeed is a record of two copies sealed by real escrow keys.
func escrowRecordSeed(f *testing.F) []byte {
	f.Helper()
	var copies []escrowCopy
	for _, name := range []string{"escrow-a", "escrow-b"} {
		priv, err := GenerateHPKEEscrowKey()
		if err != nil {
			f.Fatal(err)
		}
		e, err := NewHPKEEscrow(name, priv.PublicKey())
		if err != nil {
			f.Fatal(err)
		}
		m := EncryptionMaterials{DataKeyLength: branchKeyLength, EncryptionContext: map[string]string{bkEscrowContextOf: bkEscrowPurpose}}
		if err := e.OnEncrypt(context.Background(), &m); err != nil {
			f.Fatal(err)
		}
		copies = append(copies, escrowCopy{key: e.KeyDigest(), edk: m.EncryptedDataKeys[0]})
	}
	v, err := marshalEscrowRecord(copies)
	if err != nil {
		f.Fatal(err)
	}
	return v
}

// FuzzParseEscrowRecord: whatever a store hands back as an escrow record's
// value, parsing returns the copies, the tombstone or ErrEscrowRecord,
// never panics, holds to the caps, and what it accepts is the one encoding
// of what it read (marshalling it again gives the same bytes).
func FuzzParseEscrowRecord(f *testing.F) {
	good := escrowRecordSeed(f)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{bkEscrowShredded})
	f.Add([]byte{bkEscrowShredded, bkEscrowShredded})
	f.Add([]byte{bkEscrowVersion})
	f.Add([]byte{bkEscrowVersion, 0})
	f.Add([]byte{bkEscrowVersion, MaxBranchKeyEscrowCopies + 1})
	f.Add(append([]byte{0x02}, good[1:]...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		copies, shredded, err := parseEscrowRecord(v)
		switch {
		case err != nil:
			if !errors.Is(err, ErrEscrowRecord) || copies != nil || shredded {
				t.Fatalf("a refused record: %v, %d copies, shredded %v", err, len(copies), shredded)
			}
		case shredded:
			if !bytes.Equal(v, []byte{bkEscrowShredded}) || copies != nil {
				t.Fatal("only the single byte 00 is a tombstone")
			}
		default:
			if len(copies) == 0 || len(copies) > MaxBranchKeyEscrowCopies {
				t.Fatalf("%d copies accepted", len(copies))
			}
			again, err := marshalEscrowRecord(copies)
			if err != nil || !bytes.Equal(again, v) {
				t.Fatalf("an accepted record does not marshal back to itself: %v", err)
			}
		}
	})
}

// TestMarshalEscrowRecordCaps: a record of no copies or of more than
// MaxBranchKeyEscrowCopies is not written.
func TestMarshalEscrowRecordCaps(t *testing.T) {
	c := escrowCopy{edk: EncryptedDataKey{ProviderID: HPKEEscrowProviderID, ProviderInfo: []byte{1}, Ciphertext: []byte{2}}}
	for _, n := range []int{0, MaxBranchKeyEscrowCopies + 1} {
		copies := make([]escrowCopy, n)
		for i := range copies {
			copies[i] = c
			copies[i].key[0] = byte(i)
		}
		if _, err := marshalEscrowRecord(copies); !errors.Is(err, ErrEscrowRecord) {
			t.Fatalf("%d copies: %v", n, err)
		}
	}
	big := c
	big.edk.Ciphertext = make([]byte, 0x10000)
	if _, err := marshalEscrowRecord([]escrowCopy{big}); !errors.Is(err, ErrEscrowRecord) {
		t.Fatalf("a 65536-byte field: %v", err)
	}
}
