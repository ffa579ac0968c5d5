package fieldenc_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/phicrypt/phicrypt/fieldenc"
	"github.com/phicrypt/phicrypt/internal/testkeys"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
	"github.com/phicrypt/phicrypt/kmsmock"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// searchRow is a row searched by a blind index over its SSN.
type searchRow struct {
	ID       string                  `phi:"rowid"`
	SSN      fieldenc.Sealed[string] `phi:"encrypt,blindindex=ssn_bidx:32,normalize=digits"`
	SSNIndex []byte                  `phi:"index=ssn_bidx"`
}

// propTTL is every process's CacheTTL here (and so the propagation window).
const propTTL = 2 * time.Second

const (
	propChildEnv = "PHICRYPT_PROPAGATION_CHILD" // kind|loc|kms url|key arn|ssn
)

var propChildResult = regexp.MustCompile(`(?m)^sealed version=(\S+) index=([0-9a-f]+)$`)

// propProcess is one process's view: its own store handle, keyring, table
// and codec.
type propProcess struct {
	store keystore.Store
	bk    *keyring.BranchKeys
	kr    *keyring.Hierarchical
	codec *fieldenc.Codec[searchRow]
}

func openPropStore(ctx context.Context, kind, loc string) (keystore.Store, error) {
	if kind == "sqlite" {
		return sqlite.Open(ctx, loc)
	}
	return keystore.OpenFileStore(loc)
}

func newPropProcess(t testing.TB, kind, loc string, client *kms.Client, arn string) *propProcess {
	t.Helper()
	ctx := context.Background()
	s, err := openPropStore(ctx, kind, loc)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	bk, err := keyring.NewBranchKeys(keyring.BranchKeysConfig{Store: s, Client: client, KMSKeyARN: arn, LogicalStoreName: "propagation"})
	require.NoError(t, err)
	kr, err := keyring.NewHierarchical(keyring.HierarchicalConfig{BranchKeys: bk, BranchKeyID: branchKeyID,
		CacheTTL: propTTL, MaxUsesPerVersion: 1 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { kr.Close() })
	tbl, err := fieldenc.New(fieldenc.Config{Keys: kr, BranchKeyID: branchKeyID, Table: "patients"})
	require.NoError(t, err)
	codec, err := fieldenc.NewCodec[searchRow](tbl)
	require.NoError(t, err)
	return &propProcess{store: s, bk: bk, kr: kr, codec: codec}
}

// Item 3 of the hot-path issue: process A rotates; process B, started
// fresh, seals a row at once; process C, which knew only the old version,
// must find that row by its blind index in a search made straight after,
// and again after the propagation window, when B seals under the new
// version. B is a separate OS process; every process has its own store
// handle (file store and SQLite).
func TestSearchFindsRowsAnotherProcessSealedAfterARotation(t *testing.T) {
	for _, kind := range []string{"file", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			l := kmsmock.StartTest(t, kmsmock.Config{})
			client := l.Client("svc")
			key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
			require.NoError(t, err)
			arn := aws.ToString(key.KeyMetadata.Arn)
			loc := t.TempDir()
			if kind == "sqlite" {
				loc = filepath.Join(loc, "keys.db")
			}
			a := newPropProcess(t, kind, loc, client, arn)
			v1, err := testkeys.Custodian(t, a.bk).CreateBranchKey(ctx, branchKeyID)
			require.NoError(t, err)

			// C is warm: it has searched and sealed under version 1.
			c := newPropProcess(t, kind, loc, client, arn)
			warm := searchRow{ID: "c-1", SSN: fieldenc.Of("111-11-1111")}
			require.NoError(t, c.codec.Seal(ctx, &warm))
			_, err = c.codec.IndexValues(ctx, "ssn_bidx", "111-11-1111")
			require.NoError(t, err)

			v2, err := testkeys.Custodian(t, a.bk).Rotate(ctx, branchKeyID)
			require.NoError(t, err)

			// B seals straight after the rotation; C searches at once.
			version, index := sealInChild(t, kind, loc, l.URL, arn, "222-22-2222")
			requireFound(t, c, "222-22-2222", index)
			if time.Now().Before(a.kr.WritesFrom(v2)) {
				require.Equal(t, v1.Version, version, "within the window a fresh process writes under the old version")
			}

			// After the window every process writes under version 2, and C
			// still finds what B seals.
			time.Sleep(time.Until(a.kr.WritesFrom(v2)) + 100*time.Millisecond)
			version, index = sealInChild(t, kind, loc, l.URL, arn, "333-33-3333")
			require.Equal(t, v2.Version, version, "after the window the new version is written under")
			requireFound(t, c, "333-33-3333", index)
			// And C itself has moved to version 2.
			row := searchRow{ID: "c-2", SSN: fieldenc.Of("444-44-4444")}
			require.NoError(t, c.codec.Seal(ctx, &row))
			got, err := c.kr.EncryptingVersion(ctx, branchKeyID)
			require.NoError(t, err)
			require.Equal(t, v2.Version, got.Version)
		})
	}
}

func requireFound(t *testing.T, p *propProcess, ssn string, index []byte) {
	t.Helper()
	vals, err := p.codec.IndexValues(context.Background(), "ssn_bidx", ssn)
	require.NoError(t, err)
	for _, v := range vals {
		if b, ok := v.([]byte); ok && bytes.Equal(b, index) {
			return
		}
	}
	t.Fatalf("the search returned %d values, none the index of the row another process sealed", len(vals))
}

// sealInChild runs TestPropagationSealChild as another OS process, which
// seals one row with its own store handle and keyring, and returns the
// version it sealed under and the row's blind index.
func sealInChild(t *testing.T, kind, loc, url, arn, ssn string) (string, []byte) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPropagationSealChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), propChildEnv+"="+strings.Join([]string{kind, loc, url, arn, ssn}, "|"),
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child:\n%s", out)
	m := propChildResult.FindSubmatch(out)
	require.NotNil(t, m, "child printed no result:\n%s", out)
	index, err := hex.DecodeString(string(m[2]))
	require.NoError(t, err)
	return string(m[1]), index
}

// TestPropagationSealChild is the child of sealInChild; it does nothing
// unless started by it.
func TestPropagationSealChild(t *testing.T) {
	spec := os.Getenv(propChildEnv)
	if spec == "" {
		return
	}
	parts := strings.Split(spec, "|")
	require.Len(t, parts, 5)
	kind, loc, url, arn, ssn := parts[0], parts[1], parts[2], parts[3], parts[4]
	region := strings.Split(arn, ":")[3]
	client := kmsmock.NewClient(url, region, "svc", "kmsmock-secret")
	p := newPropProcess(t, kind, loc, client, arn)
	row := searchRow{ID: "b-" + ssn, SSN: fieldenc.Of(ssn)}
	require.NoError(t, p.codec.Seal(context.Background(), &row))
	v, err := p.kr.EncryptingVersion(context.Background(), branchKeyID)
	require.NoError(t, err)
	fmt.Printf("sealed version=%s index=%s\n", v.Version, hex.EncodeToString(row.SSNIndex))
}

// Item 2 of the hot-path issue, for fieldenc's own slow paths: the first
// Seal on a cold table gives up (its request timed out); the Seals waiting
// for the same reservation and branch key get them, from one KMS call.
func TestSealWaitersSurviveTheFirstCallersCancellation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, zeroHC())
	codec, err := fieldenc.NewCodec[searchRow](e.table(t, fieldenc.Config{}))
	require.NoError(t, err)
	e.kms.SetFault("Decrypt", kmsmock.Fault{Latency: 400 * time.Millisecond})

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		row := searchRow{ID: "first", SSN: fieldenc.Of("123-45-6789")}
		first <- codec.Seal(short, &row)
	}()
	time.Sleep(10 * time.Millisecond)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			row := searchRow{ID: fmt.Sprint("waiter-", i), SSN: fieldenc.Of("123-45-6789")}
			errs <- codec.Seal(ctx, &row)
		}()
	}
	err = <-first
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "fieldenc: ")
	for range 8 {
		require.NoError(t, <-errs, "a waiter failed because another caller's context ended")
	}
	require.Equal(t, int64(1), e.kms.Calls("Decrypt"))
}
