package dynamodb

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/phicrypt/phicrypt/keystore"
)

// Attribute names and values of AWS's items (branch-key-store.md "Record
// Format").
const (
	attrID         = "branch-key-id" // partition key (S)
	attrType       = "type"          // sort key (S)
	attrEnc        = "enc"           // wrapped key (B)
	attrCreateTime = "create-time"   // ISO 8601, UTC, microseconds (S)
	attrKMSARN     = "kms-arn"       // the KMS key that wrapped enc (S)
	attrHierarchy  = "hierarchy-version"
	attrVersion    = "version" // on branch:ACTIVE only: "branch:version:<uuid>" (S)

	typeActive        = "branch:ACTIVE"
	typeBeacon        = "beacon:ACTIVE"
	typeVersionPrefix = "branch:version:"
	hierarchyVersion  = "1"
	// createTimeLayout: "ISO 8601 format in UTC, to microsecond precision
	// (e.g. YYYY-MM-DDTHH:mm:ss.ssssssZ)" (branch-key-store.md "CreateKey").
	createTimeLayout = "2006-01-02T15:04:05.000000Z"
	// customContextPrefix marks a custom encryption context attribute
	// (branch-key-store.md "Custom Encryption Context").
	customContextPrefix = "aws-crypto-ec:"
)

// phicrypt's own items: one per version, sort key "phicrypt:version:<uuid>",
// holding what AWS's layout has no place for. AWS's readers never read them
// (they get items by exact sort key: branch:ACTIVE, branch:version:<uuid>,
// beacon:ACTIVE).
const (
	typeMetaPrefix = "phicrypt:version:"
	attrSchema     = "phicrypt-schema" // N, 1
	attrUsage      = "usage"           // N, the usage counter
	attrWriteToken = "write-token"     // B, 16 random bytes: which create or rotation wrote the item
	attrUsageToken = "usage-token"     // B, 16 random bytes: which AddUsage counted last
	attrState      = "state"           // S, decrypt_only, retired or destroyed; absent: decrypt_only
	metaSchema     = "1"

	stateDecryptOnly = "decrypt_only"
	stateRetired     = "retired"
	stateDestroyed   = "destroyed"
)

// attrTombstone marks one of AWS's items (branch:version, branch:ACTIVE)
// whose wrapped key phicrypt has erased (Store.Destroy, DestroyKey): its
// "enc" attribute is removed and this one, "destroyed", added. AWS's
// readers then find no wrapped key and fail; phicrypt reads a tombstone.
const attrTombstone = "phicrypt-state"

// Caps on what is read from the table, which may be hostile.
const (
	maxItemAttrs   = 16  // attributes of one item
	maxNumberLen   = 40  // a DynamoDB number has at most 38 digits
	maxTypeLen     = 128 // a sort key value phicrypt reads
	maxKeyItems    = 3 + 2*MaxVersions
	maxQueryPages  = 1024
	maxScanPages   = 1 << 16
	maxBranchKeys  = 1 << 20
	maxCreateTime  = len("9999-12-31T23:59:59.999999Z")
	maxVersionAttr = len(typeVersionPrefix) + 36
)

// MaxVersions is the most versions of one branch key the store reads; a
// branch key rotated daily reaches it after about 180 years.
const MaxVersions = 65536

func avS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func avN(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func avB(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }
func versionType(version string) string { return typeVersionPrefix + version }
func metaType(version string) string    { return typeMetaPrefix + version }

// key is the primary key of item typ of branch key id.
func key(id, typ string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrID: avS(id), attrType: avS(typ)}
}

func formatCreateTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(createTimeLayout)
}

// awsItem is one of AWS's items for v: the branch:version item (typ
// "branch:version:<uuid>", enc v.Ciphertext), the branch:ACTIVE item (with
// the version attribute, enc the ACTIVE copy) or the beacon:ACTIVE item
// (enc the beacon key). All three share create-time, kms-arn and
// hierarchy-version (branch-key-store.md "Writing Branch Key and Beacon Key
// to Keystore").
func awsItem(v keystore.BranchKeyVersion, typ string, enc []byte) map[string]types.AttributeValue {
	it := key(v.BranchKeyID, typ)
	it[attrEnc] = avB(enc)
	it[attrCreateTime] = avS(formatCreateTime(v.CreatedAt))
	it[attrKMSARN] = avS(v.KMSKeyARN)
	it[attrHierarchy] = avN(hierarchyVersion)
	if typ == typeActive {
		it[attrVersion] = avS(versionType(v.Version))
	}
	return it
}

// metaItem is phicrypt's item for a new version v.
func metaItem(v keystore.BranchKeyVersion) map[string]types.AttributeValue {
	it := key(v.BranchKeyID, metaType(v.Version))
	it[attrSchema] = avN(metaSchema)
	it[attrUsage] = avN(strconv.FormatUint(v.Usage, 10))
	return it
}

// decodeVersion reads an AWS branch:version item of branch key id as a
// version (its State left zero, or StateDestroyed for a tombstone, which
// has no Ciphertext). Only what phicrypt can unwrap is accepted:
// hierarchy version 1, exactly the spec's attributes (AWS's readers bind
// every attribute into the KMS encryption context, and phicrypt rebuilds
// only the spec's six), and a create-time that formats back to itself.
func decodeVersion(id, version string, it map[string]types.AttributeValue) (keystore.BranchKeyVersion, error) {
	v := keystore.BranchKeyVersion{BranchKeyID: id, Version: version}
	tomb, err := checkAWSItem(id, versionType(version), it, false)
	if err != nil {
		return v, err
	}
	if tomb {
		v.State = keystore.StateDestroyed
	} else {
		v.Ciphertext = it[attrEnc].(*types.AttributeValueMemberB).Value
	}
	v.KMSKeyARN = it[attrKMSARN].(*types.AttributeValueMemberS).Value
	v.CreatedAt, _ = time.Parse(createTimeLayout, it[attrCreateTime].(*types.AttributeValueMemberS).Value)
	return v, nil
}

// activeVersion reads the branch:ACTIVE item of id: the version it names,
// and whether the item is a tombstone (the key is destroyed; the version
// is the one that was active).
func activeVersion(id string, it map[string]types.AttributeValue) (string, bool, error) {
	tomb, err := checkAWSItem(id, typeActive, it, true)
	if err != nil {
		return "", false, err
	}
	return strings.TrimPrefix(it[attrVersion].(*types.AttributeValueMemberS).Value, typeVersionPrefix), tomb, nil
}

// checkAWSItem checks that it is AWS item typ of branch key id, as
// phicrypt can read it; active says it is the branch:ACTIVE item. tomb
// reports a tombstone: no enc, and attrTombstone in its place.
func checkAWSItem(id, typ string, it map[string]types.AttributeValue, active bool) (tomb bool, err error) {
	err = checkAWSItemAttrs(id, typ, it, active)
	_, tomb = it[attrTombstone]
	return tomb && err == nil, err
}

func checkAWSItemAttrs(id, typ string, it map[string]types.AttributeValue, active bool) error {
	ref := keyRef(id)
	if len(it) > maxItemAttrs {
		return fmt.Errorf("%w: item %s of %s has %d attributes", ErrCorrupt, typ, ref, len(it))
	}
	// A newer hierarchy version first: it is the one error worth an
	// upgrade.
	if hv, ok := it[attrHierarchy].(*types.AttributeValueMemberN); !ok {
		return fmt.Errorf("%w: item %s of %s has no hierarchy-version number", ErrCorrupt, typ, ref)
	} else if hv.Value != hierarchyVersion {
		return fmt.Errorf("%w: %s is of a hierarchy version other than 1", keystore.ErrUnsupportedSchema, ref)
	}
	if got, ok := str(it, attrID, keystore.MaxBranchKeyIDLen); !ok || got != id {
		return fmt.Errorf("%w: item %s of %s names another branch key", ErrCorrupt, typ, ref)
	}
	if got, ok := str(it, attrType, maxTypeLen); !ok || got != typ {
		return fmt.Errorf("%w: item %s of %s has another type", ErrCorrupt, typ, ref)
	}
	if mark, ok := it[attrTombstone]; ok {
		if sv, ok := mark.(*types.AttributeValueMemberS); !ok || sv.Value != stateDestroyed {
			return fmt.Errorf("%w: item %s of %s has an unknown %s", keystore.ErrUnsupportedSchema, typ, ref, attrTombstone)
		}
		if _, ok := it[attrEnc]; ok {
			return fmt.Errorf("%w: item %s of %s is marked destroyed but holds a wrapped key", ErrCorrupt, typ, ref)
		}
	} else if enc, ok := it[attrEnc].(*types.AttributeValueMemberB); !ok || len(enc.Value) == 0 || len(enc.Value) > keystore.MaxWrappedBranchKeyLen {
		return fmt.Errorf("%w: item %s of %s has no wrapped key of 1 to %d bytes", ErrCorrupt, typ, ref, keystore.MaxWrappedBranchKeyLen)
	}
	if arn, ok := str(it, attrKMSARN, keystore.MaxKMSKeyARNLen); !ok || arn == "" {
		return fmt.Errorf("%w: item %s of %s has no kms-arn", ErrCorrupt, typ, ref)
	}
	ct, ok := str(it, attrCreateTime, maxCreateTime)
	if t, err := time.Parse(createTimeLayout, ct); !ok || err != nil || t.Format(createTimeLayout) != ct {
		return fmt.Errorf("%w: item %s of %s has a create-time that is not YYYY-MM-DDTHH:mm:ss.ssssssZ; phicrypt rebuilds the KMS encryption context from it in that form", keystore.ErrUnsupportedSchema, typ, ref)
	}
	want := 6
	if active {
		want = 7
		ver, ok := str(it, attrVersion, maxVersionAttr)
		if !ok || !strings.HasPrefix(ver, typeVersionPrefix) || checkVersionID(strings.TrimPrefix(ver, typeVersionPrefix)) != nil {
			return fmt.Errorf("%w: the branch:ACTIVE item of %s names no version", ErrCorrupt, ref)
		}
	}
	if len(it) != want {
		for name := range it {
			if strings.HasPrefix(name, customContextPrefix) {
				return fmt.Errorf("%w: %s has a custom encryption context (aws-crypto-ec: attributes), which phicrypt does not bind into the KMS encryption context", keystore.ErrUnsupportedSchema, ref)
			}
		}
		return fmt.Errorf("%w: item %s of %s has attributes beyond the branch key store specification's, which AWS's readers bind into the KMS encryption context and phicrypt does not", keystore.ErrUnsupportedSchema, typ, ref)
	}
	return nil
}

// meta is what phicrypt's item of a version says.
type meta struct {
	usage     uint64
	retired   bool
	destroyed bool
}

// decodeMeta reads phicrypt's item of a version; a missing item (a version
// AWS's KeyStore made) is a version never counted nor retired.
func decodeMeta(id string, it map[string]types.AttributeValue) (meta, error) {
	var m meta
	if len(it) == 0 {
		return m, nil
	}
	ref := keyRef(id)
	if len(it) > maxItemAttrs {
		return m, fmt.Errorf("%w: a phicrypt item of %s has %d attributes", ErrCorrupt, ref, len(it))
	}
	if sv, ok := it[attrSchema].(*types.AttributeValueMemberN); !ok || sv.Value != metaSchema {
		return m, fmt.Errorf("%w: a phicrypt item of %s is of an unknown schema", keystore.ErrUnsupportedSchema, ref)
	}
	if u, ok := it[attrUsage]; ok {
		un, ok := u.(*types.AttributeValueMemberN)
		if !ok || len(un.Value) > maxNumberLen {
			return m, fmt.Errorf("%w: a phicrypt item of %s has an unreadable usage counter", ErrCorrupt, ref)
		}
		usage, err := parseUsage(un.Value)
		if err != nil {
			return m, fmt.Errorf("%w: a phicrypt item of %s has an unreadable usage counter", ErrCorrupt, ref)
		}
		m.usage = usage
	}
	if st, ok := it[attrState]; ok {
		sv, ok := st.(*types.AttributeValueMemberS)
		switch {
		case ok && sv.Value == stateRetired:
			m.retired = true
		case ok && sv.Value == stateDestroyed:
			m.destroyed = true
		case ok && sv.Value == stateDecryptOnly:
		default:
			return m, fmt.Errorf("%w: a phicrypt item of %s has an unknown state", keystore.ErrUnsupportedSchema, ref)
		}
	}
	return m, nil
}

// parseUsage reads a non-negative decimal counter, saturating at
// keystore.MaxUsage (DynamoDB numbers go to 38 digits).
func parseUsage(v string) (uint64, error) {
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return 0, fmt.Errorf("not a counter")
	}
	u, err := strconv.ParseUint(v, 10, 64)
	if err != nil || u > keystore.MaxUsage {
		return keystore.MaxUsage, nil // all digits: only too large
	}
	return u, nil
}

// str is string attribute name of it, if it is one of at most max bytes.
func str(it map[string]types.AttributeValue, name string, max int) (string, bool) {
	v, ok := it[name].(*types.AttributeValueMemberS)
	if !ok || len(v.Value) > max {
		return "", false
	}
	return v.Value, true
}
