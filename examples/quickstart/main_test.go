package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"started kmsmock", "created KMS key arn:aws:kms:us-east-1:111122223333:key/",
		"alias/quickstart-phi", "32-byte data key", "it matches", "InvalidCiphertextException",
		"AWS Encryption SDK message", "streamed 8 MiB", "matches what went in", "was refused",
		"2500 messages encrypted and decrypted with 6 keyring (KMS) calls",
		"1000 messages under branch key version", "cost 1 KMS call(s)", "2 versions stored", "earlier messages still decrypt",
		"prints as {p-0001 [REDACTED] [REDACTED]", "found it by blind index", "name=phi:", "opened: name=Ada Lovelace ssn=078-05-1120 mrn=MRN-000042 dob=1815-12-10",
		"CreateKey:2",
		"custodians administer it and services use it, never both", "installed a signed policy for patient-*",
		"KMS refused the custodian's Decrypt of a branch key: AccessDeniedException",
		"with carol's approval alone was refused: custody: too few custodians approved the change",
		"approved by [bob carol], the first patient's key was crypto-shredded: their record fails with ErrKeyDestroyed; the second patient's still decrypts",
		"audit log verified with the log's public key: 8 records (2 KMS key uses, 4 changes, 1 denial, 1 destruction), the destruction proven included"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// Encryption-context values may be PHI: the quickstart never prints them.
	for _, secret := range []string{"general-hospital", "another-hospital", "patient-1001", "patient-1002", "lab results"} {
		if strings.Contains(got, secret) {
			t.Errorf("output contains the context value %q", secret)
		}
	}
}
