package goesdk

import (
	"context"
	"errors"
	"testing"

	awskstypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographykeystoresmithygeneratedtypes"
	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
)

// Crypto-shredding in the shared table: once phicrypt destroys a version,
// neither phicrypt nor AWS's hierarchical keyring (a fresh one, whose cache
// never held the key) decrypts a message under it, whichever side wrote
// it, while the other version still serves both; once phicrypt destroys
// the whole key, AWS's KeyStore reads neither its active branch key nor its
// beacon key, and no message under it decrypts on either side.
func TestHierarchicalGoESDKShredded(t *testing.T) {
	ddbURL, targets := hierTargets(t)
	p := newGoESDK(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) { testShredded(t, p, tg, ddbURL) })
	}
}

func testShredded(t *testing.T, p *goESDK, tg kmsTarget, ddbURL string) {
	ctx := context.Background()
	st := newSharedTable(t, tg, ddbURL)
	id := "patient-" + randomHex(4)
	bk, _, _ := st.phicryptSide(t, st.logical, id)
	custodian, err := custody.NewBranchKeys(bk.Config())
	if err != nil {
		t.Fatal(err)
	}
	first, err := custodian.CreateBranchKey(ctx, id)
	if err != nil {
		t.Fatalf("custody CreateBranchKey: %v", err)
	}
	vs := matrix(hierFrames)[:3]
	go1, phi1 := st.exchange(t, p, id, first.Version, vs, nil)
	next, err := custodian.Rotate(ctx, id)
	if err != nil {
		t.Fatalf("custody Rotate: %v", err)
	}
	go2, phi2 := st.exchange(t, p, id, next.Version, vs, []sent{go1, phi1})

	if err := custodian.DestroyVersion(ctx, id, first.Version); err != nil {
		t.Fatalf("custody DestroyVersion: %v", err)
	}
	_, enc, _ := st.phicryptSide(t, st.logical, id)
	m := st.awsKeyring(t, p, st.aws, id)
	for i, v := range vs {
		if _, _, err := enc.Decrypt(ctx, go1.msgs[i], v.ec); !errors.Is(err, keyring.ErrKeyDestroyed) {
			t.Fatalf("phicrypt on the ESDK's message under the destroyed version: %v, want ErrKeyDestroyed", err)
		}
		crossChecked()
		if _, err := p.decrypt(m, phi1.msgs[i], v.ec); err == nil {
			t.Fatal("the ESDK read a message under a destroyed version")
		}
		crossChecked()
		phicryptReads(t, enc, go2.msgs[i], v)
		esdkReads(t, p, m, phi2.msgs[i], v)
	}
	if _, err := st.aws.GetBranchKeyVersion(ctx, awskstypes.GetBranchKeyVersionInput{BranchKeyIdentifier: id, BranchKeyVersion: first.Version}); err == nil {
		t.Fatal("the MPL's KeyStore read a destroyed version")
	}

	if err := custodian.DestroyKey(ctx, id); err != nil {
		t.Fatalf("custody DestroyKey: %v", err)
	}
	_, enc, _ = st.phicryptSide(t, st.logical, id)
	m = st.awsKeyring(t, p, st.aws, id)
	for i, v := range vs {
		if _, _, err := enc.Decrypt(ctx, go2.msgs[i], v.ec); !errors.Is(err, keyring.ErrKeyDestroyed) {
			t.Fatalf("phicrypt on a message under a destroyed key: %v, want ErrKeyDestroyed", err)
		}
		if _, err := p.decrypt(m, phi2.msgs[i], v.ec); err == nil {
			t.Fatal("the ESDK read a message under a destroyed key")
		}
		crossChecked()
	}
	if _, err := st.aws.GetActiveBranchKey(ctx, awskstypes.GetActiveBranchKeyInput{BranchKeyIdentifier: id}); err == nil {
		t.Fatal("the MPL's KeyStore read the active branch key of a destroyed key")
	}
	if _, err := st.aws.GetBeaconKey(ctx, awskstypes.GetBeaconKeyInput{BranchKeyIdentifier: id}); err == nil {
		t.Fatal("the MPL's KeyStore read the beacon key of a destroyed key")
	}
	if _, err := p.encrypt(m, vs[0].suite, vs[0].frame, vs[0].pt, vs[0].ec); err == nil {
		t.Fatal("the ESDK encrypted under a destroyed key")
	}
}
