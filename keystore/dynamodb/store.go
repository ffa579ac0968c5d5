package dynamodb

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/phicrypt/phicrypt/keystore"
)

// API is the part of *dynamodb.Client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	TransactGetItems(ctx context.Context, in *dynamodb.TransactGetItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactGetItemsOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store is a keystore.Store in a DynamoDB table of AWS's branch key store
// layout. It is safe for concurrent use by many goroutines and processes:
// every write is a conditional write or a transaction.
//
// # The extra wrapped keys AWS's layout needs
//
// A Store never calls KMS, and AWS's layout keeps two wrapped keys that a
// keystore.BranchKeyVersion does not carry. So a branch key is created with
// CreateWithCopies, rotated with RotateWithCopy, and its active version
// rewrapped with RewrapWithCopy; Create and Rotate are refused with
// keystore.ErrInvalid, and Rewrap of the active version too. The caller
// (keyring.BranchKeys) makes the extra keys with KMS exactly as
// branch-key-store.md "Branch Key and Beacon Key Creation" and "Wrapped
// Branch Key Creation" say, where DECRYPT_ONLY(v) is the encryption context
// BranchKeys.EncryptionContext(v) already binds (branch-key-id,
// type "branch:version:<uuid>", create-time, tablename = the logical store
// name, kms-arn, hierarchy-version "1"):
//
//   - activeCopy: KMS ReEncrypt of v.Ciphertext with SourceKeyId and
//     DestinationKeyId v.KMSKeyARN, SourceEncryptionContext DECRYPT_ONLY(v),
//     DestinationEncryptionContext ACTIVE(v) = DECRYPT_ONLY(v) with type
//     "branch:ACTIVE" and one more pair, version = "branch:version:<uuid>";
//     the result's CiphertextBlob. (For RewrapWithCopy: the same ReEncrypt
//     of the new ciphertext, under the new KMS key ARN.)
//   - beacon (CreateWithCopies only): KMS GenerateDataKeyWithoutPlaintext
//     with KeyId v.KMSKeyARN, NumberOfBytes 32, EncryptionContext
//     BEACON(v) = DECRYPT_ONLY(v) with type "beacon:ACTIVE"; its
//     CiphertextBlob.
//
// Grant tokens, if any, go with each call. Active, Get and List return
// only the branch:version items (DECRYPT_ONLY ciphertexts), so unwrapping
// is unchanged.
//
// # What AWS's readers do not see
//
// Usage counters and the retired state live in phicrypt's own items
// ("phicrypt:version:<uuid>"). AWS's hierarchical keyring reads none of
// them, so it still decrypts under a version phicrypt has retired: retiring
// stops phicrypt's readers, not AWS's. The beacon:ACTIVE item stays under
// the KMS key it was made with (phicrypt does not use beacon keys; AWS's
// Database Encryption SDK does, for searchable encryption).
//
// # Crypto-shredding
//
// Destroy and DestroyKey remove the wrapped keys from AWS's items (the
// version's enc; for a key, also the branch:ACTIVE copy, and the
// beacon:ACTIVE item is deleted), leaving tombstones that AWS's hierarchical
// keyring cannot unwrap and that keep the id from being created again.
// DestroyKey is not one transaction: see its documentation. DynamoDB's
// point-in-time recovery, backups, exports and Streams records made before
// keep the old items for their retention (docs/OPERATIONS.md).
//
// Transactions are safe to retry: the SDK gives every TransactWriteItems
// call a client request token, so a retry of one that committed succeeds
// again instead of failing its conditions. AddUsage's UpdateItem is not
// idempotent: it carries a token of the call, and a retry after a lost
// answer that finds its own token reads the count instead of adding it
// again; but when another AddUsage counted in between (replacing the
// token), the retry counts twice, which keeps the usage counter an upper
// bound, as the Store contract says. PutRecord keeps the tokens of the
// last 8 revisions, so its outcome is exact unless 8 other puts land
// between an applied attempt and its retry.
type Store struct {
	api    API
	table  string
	closed atomic.Bool
}

// New returns a store over the table (made by CreateTable, or by AWS's
// CreateKeyStore) that client reaches. It makes no call.
func New(client API, table string) (*Store, error) {
	if client == nil {
		return nil, errors.New("dynamodb store: New needs a DynamoDB client")
	}
	if err := checkTableName(table); err != nil {
		return nil, err
	}
	return &Store{api: client, table: table}, nil
}

var _ keystore.Store = (*Store)(nil)

// String names the store by its table.
func (s *Store) String() string { return "dynamodb.Store(" + s.table + ")" }

// Close marks the store closed; the DynamoDB client is the caller's and
// stays open.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return errors.New("dynamodb store: already closed")
	}
	return nil
}

func (s *Store) use() error {
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

var errNeedsCopies = fmt.Errorf("%w: the DynamoDB store keeps AWS's branch key store layout, whose branch:ACTIVE and beacon:ACTIVE items are made with KMS: create with CreateWithCopies and rotate with RotateWithCopy", keystore.ErrInvalid)

// Create is refused: see CreateWithCopies.
func (s *Store) Create(ctx context.Context, v keystore.BranchKeyVersion) error {
	if err := s.use(); err != nil {
		return err
	}
	return errNeedsCopies
}

// Rotate is refused: see RotateWithCopy.
func (s *Store) Rotate(ctx context.Context, id, expectedActive string, next keystore.BranchKeyVersion) error {
	if err := s.use(); err != nil {
		return err
	}
	return errNeedsCopies
}

// CreateWithCopies is keystore.Store.Create with the two wrapped keys AWS's
// layout adds (see Store): it writes the branch:version, branch:ACTIVE and
// beacon:ACTIVE items and phicrypt's item in one transaction, on condition
// that none exists (branch-key-store.md "Writing Branch Key and Beacon Key
// to Keystore"). ErrExists if the branch key exists.
func (s *Store) CreateWithCopies(ctx context.Context, v keystore.BranchKeyVersion, activeCopy, beacon []byte) error {
	if err := s.use(); err != nil {
		return err
	}
	if err := checkNew(v, activeCopy); err != nil {
		return err
	}
	if err := checkCiphertext("the wrapped beacon key", beacon); err != nil {
		return err
	}
	token := newWriteToken()
	_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.putNew(awsItem(v, versionType(v.Version), v.Ciphertext)),
		s.putNew(awsItem(v, typeActive, activeCopy)),
		s.putNew(awsItem(v, typeBeacon, beacon)),
		s.putNew(withToken(metaItem(v), token)),
	}})
	if codes := cancelCodes(err); codes != nil {
		if isTransactionConflict(codes) {
			return fmt.Errorf("%w: %s is being created by another process", keystore.ErrConflict, keyRef(v.BranchKeyID))
		}
		if s.wroteOwn(ctx, v, token) {
			return nil
		}
		return fmt.Errorf("%w: %s", keystore.ErrExists, keyRef(v.BranchKeyID))
	}
	if err != nil {
		return wrap("creating "+keyRef(v.BranchKeyID), err)
	}
	return nil
}

// RotateWithCopy is keystore.Store.Rotate with the ACTIVE copy of next (see
// Store). In one transaction it adds next's branch:version item and
// phicrypt's item (on condition that neither exists) and replaces the
// branch:ACTIVE item with next's, on condition that it still names
// expectedActive: the optimistic lock of branch-key-store.md "VersionKey",
// which conditions on the old ACTIVE ciphertext; naming the version is the
// same lock, and a concurrent AWS VersionKey's condition fails on our
// write as ours fails on its.
func (s *Store) RotateWithCopy(ctx context.Context, id, expectedActive string, next keystore.BranchKeyVersion, activeCopy []byte) error {
	if err := s.use(); err != nil {
		return err
	}
	if err := checkKeyVersion(id, expectedActive); err != nil {
		return err
	}
	if next.BranchKeyID != id {
		return fmt.Errorf("%w: the next version belongs to another branch key", keystore.ErrInvalid)
	}
	if err := checkNew(next, activeCopy); err != nil {
		return err
	}
	token := newWriteToken()
	_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.putNew(awsItem(next, versionType(next.Version), next.Ciphertext)),
		s.putNew(withToken(metaItem(next), token)),
		{Put: &types.Put{
			TableName:                 &s.table,
			Item:                      awsItem(next, typeActive, activeCopy),
			ConditionExpression:       aws.String("#v = :expected AND attribute_not_exists(#tomb)"),
			ExpressionAttributeNames:  map[string]string{"#v": attrVersion, "#tomb": attrTombstone},
			ExpressionAttributeValues: map[string]types.AttributeValue{":expected": avS(versionType(expectedActive))},
		}},
	}})
	codes := cancelCodes(err)
	switch {
	case codes == nil && err != nil:
		return wrap("rotating "+keyRef(id), err)
	case codes == nil:
		return nil
	case isTransactionConflict(codes):
		return fmt.Errorf("%w: another process is rotating %s", keystore.ErrConflict, keyRef(id))
	case s.wroteOwn(ctx, next, token):
		return nil
	case codes[0] == "ConditionalCheckFailed":
		return fmt.Errorf("%w: %s already has version %s", keystore.ErrExists, keyRef(id), next.Version)
	}
	if _, err := s.Active(ctx, id); err != nil {
		return err // ErrNotFound: no such branch key; ErrDestroyed
	}
	return fmt.Errorf("%w: %s version %s is no longer active", keystore.ErrConflict, keyRef(id), expectedActive)
}

// putNew puts item on condition that it does not exist.
func (s *Store) putNew(item map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		TableName:                &s.table,
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	}}
}

// activeItem reads the branch:ACTIVE item of id: ErrNotFound if none.
func (s *Store) activeItem(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(id, typeActive), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, wrap("reading the active version of "+keyRef(id), err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("%w: %s", keystore.ErrNotFound, keyRef(id))
	}
	return out.Item, nil
}

// Active returns the version the branch:ACTIVE item names, as its
// branch:version item (the DECRYPT_ONLY ciphertext).
func (s *Store) Active(ctx context.Context, id string) (keystore.BranchKeyVersion, error) {
	if err := s.use(); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	if err := checkID(id); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	// A rotation between the two reads makes the version read no longer
	// active; read again (three times at most). If rotations keep winning,
	// the version the last branch:ACTIVE read named is the answer: it was
	// the active version at that read, as any read racing a write may say.
	var last keystore.BranchKeyVersion
	for range 3 {
		it, err := s.activeItem(ctx, id)
		if err != nil {
			return keystore.BranchKeyVersion{}, err
		}
		version, tomb, err := activeVersion(id, it)
		if err != nil {
			return keystore.BranchKeyVersion{}, err
		}
		if tomb {
			return keystore.BranchKeyVersion{}, keystore.KeyDestroyedError(id)
		}
		v, err := s.get(ctx, id, version)
		if errors.Is(err, keystore.ErrNotFound) {
			return v, fmt.Errorf("%w: the branch:ACTIVE item of %s names a version that has no branch:version item", ErrCorrupt, keyRef(id))
		}
		if err != nil || v.State == keystore.StateActive {
			return v, err
		}
		last = v
	}
	last.State = keystore.StateActive
	return last, nil
}

// Get returns one version of branch key id, whatever its state.
func (s *Store) Get(ctx context.Context, id, version string) (keystore.BranchKeyVersion, error) {
	if err := s.use(); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	if err := checkKeyVersion(id, version); err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	return s.get(ctx, id, version)
}

// get reads the version's item, phicrypt's item and the branch:ACTIVE item
// in one consistent snapshot (TransactGetItems).
func (s *Store) get(ctx context.Context, id, version string) (keystore.BranchKeyVersion, error) {
	gets := make([]types.TransactGetItem, 3)
	for i, typ := range []string{versionType(version), metaType(version), typeActive} {
		gets[i] = types.TransactGetItem{Get: &types.Get{TableName: &s.table, Key: key(id, typ)}}
	}
	out, err := s.api.TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{TransactItems: gets})
	if err != nil {
		return keystore.BranchKeyVersion{}, wrap("reading version "+version+" of "+keyRef(id), err)
	}
	if len(out.Responses) != 3 {
		return keystore.BranchKeyVersion{}, fmt.Errorf("%w: DynamoDB answered %d items for 3", ErrCorrupt, len(out.Responses))
	}
	if len(out.Responses[0].Item) == 0 {
		return keystore.BranchKeyVersion{}, fmt.Errorf("%w: %s has no version %s", keystore.ErrNotFound, keyRef(id), version)
	}
	v, err := decodeVersion(id, version, out.Responses[0].Item)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	m, err := decodeMeta(id, out.Responses[1].Item)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	if len(out.Responses[2].Item) == 0 {
		return keystore.BranchKeyVersion{}, fmt.Errorf("%w: %s has versions but no branch:ACTIVE item", ErrCorrupt, keyRef(id))
	}
	active, _, err := activeVersion(id, out.Responses[2].Item)
	if err != nil {
		return keystore.BranchKeyVersion{}, err
	}
	v.State, v.Usage = state(v, active, m), m.usage
	return v, nil
}

// state is the state of v (as decodeVersion read it) when the
// branch:ACTIVE item names active and phicrypt's item says m.
func state(v keystore.BranchKeyVersion, active string, m meta) keystore.State {
	switch {
	case v.State == keystore.StateDestroyed || m.destroyed:
		return keystore.StateDestroyed
	case v.Version == active:
		return keystore.StateActive
	case m.retired:
		return keystore.StateRetired
	}
	return keystore.StateDecryptOnly
}

// List returns every version of branch key id, ordered by create-time
// (then version, for equal times), oldest first.
func (s *Store) List(ctx context.Context, id string) ([]keystore.BranchKeyVersion, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	items, err := s.partition(ctx, id)
	if err != nil {
		return nil, err
	}
	var versions []keystore.BranchKeyVersion
	metas := map[string]meta{}
	active := ""
	for _, it := range items {
		typ, ok := str(it, attrType, maxTypeLen)
		if !ok {
			return nil, fmt.Errorf("%w: an item of %s has no type", ErrCorrupt, keyRef(id))
		}
		switch {
		case typ == typeActive:
			if active, _, err = activeVersion(id, it); err != nil {
				return nil, err
			}
		case strings.HasPrefix(typ, typeVersionPrefix):
			version := strings.TrimPrefix(typ, typeVersionPrefix)
			if err := checkVersionID(version); err != nil {
				return nil, fmt.Errorf("%w: an item of %s names a version that is not a lowercase UUID", ErrCorrupt, keyRef(id))
			}
			v, err := decodeVersion(id, version, it)
			if err != nil {
				return nil, err
			}
			versions = append(versions, v)
		case strings.HasPrefix(typ, typeMetaPrefix):
			m, err := decodeMeta(id, it)
			if err != nil {
				return nil, err
			}
			metas[strings.TrimPrefix(typ, typeMetaPrefix)] = m
		}
		// Anything else (beacon:ACTIVE, AWS's mutation items) is not a
		// version.
	}
	if len(versions) == 0 && active == "" {
		return nil, fmt.Errorf("%w: %s", keystore.ErrNotFound, keyRef(id))
	}
	found := false
	for i := range versions {
		versions[i].State = state(versions[i], active, metas[versions[i].Version])
		versions[i].Usage = metas[versions[i].Version].usage
		found = found || versions[i].Version == active
	}
	if !found {
		return nil, fmt.Errorf("%w: the branch:ACTIVE item of %s is missing or names a version that has no branch:version item", ErrCorrupt, keyRef(id))
	}
	slices.SortFunc(versions, func(a, b keystore.BranchKeyVersion) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.Version, b.Version))
	})
	return versions, nil
}

// partition reads every item of branch key id (a consistent Query), within
// the caps.
func (s *Store) partition(ctx context.Context, id string) ([]map[string]types.AttributeValue, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": avS(id)},
		ConsistentRead:            aws.Bool(true),
	}
	var items []map[string]types.AttributeValue
	for page := 0; ; page++ {
		if page == maxQueryPages {
			return nil, fmt.Errorf("%w: %s spans more than %d pages", ErrCorrupt, keyRef(id), maxQueryPages)
		}
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return nil, wrap("listing the versions of "+keyRef(id), err)
		}
		items = append(items, out.Items...)
		if len(items) > maxKeyItems {
			return nil, fmt.Errorf("%w: %s has more than %d versions", ErrCorrupt, keyRef(id), MaxVersions)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// IDs returns the id of every branch key (every branch:ACTIVE item: a
// consistent Scan), sorted bytewise. It reads the whole table, a page of
// 1 MB at a time; custodian jobs call it, services do not.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	in := &dynamodb.ScanInput{
		TableName:                 &s.table,
		FilterExpression:          aws.String("#t = :active"),
		ProjectionExpression:      aws.String("#id, #t"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID, "#t": attrType},
		ExpressionAttributeValues: map[string]types.AttributeValue{":active": avS(typeActive)},
		ConsistentRead:            aws.Bool(true),
	}
	var ids []string
	for page := 0; ; page++ {
		if page == maxScanPages {
			return nil, fmt.Errorf("%w: the table spans more than %d pages", ErrCorrupt, maxScanPages)
		}
		out, err := s.api.Scan(ctx, in)
		if err != nil {
			return nil, wrap("listing branch keys", err)
		}
		for _, it := range out.Items {
			id, ok := str(it, attrID, keystore.MaxBranchKeyIDLen)
			if !ok || checkID(id) != nil {
				return nil, fmt.Errorf("%w: a branch:ACTIVE item has no usable branch-key-id", ErrCorrupt)
			}
			// A key of another hierarchy version is listed all the same:
			// reading it says ErrUnsupportedSchema, and the others stay
			// reachable (a custodian's RotateDue carries on past it).
			ids = append(ids, id)
		}
		if len(ids) > maxBranchKeys {
			return nil, fmt.Errorf("%w: the table has more than %d branch keys", keystore.ErrInvalid, maxBranchKeys)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// wroteOwn reports whether phicrypt's item of version v carries token:
// the transaction whose conditions failed was refused only because an
// earlier attempt of this same call had been applied (the SDK retries a
// write whose answer was lost, and a DynamoDB that no longer holds the
// request's idempotency token finds the items the first attempt wrote).
// Each call draws its own token, so a second call with the same version
// is still ErrExists.
func (s *Store) wroteOwn(ctx context.Context, v keystore.BranchKeyVersion, token []byte) bool {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(v.BranchKeyID, metaType(v.Version)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false
	}
	t, ok := out.Item[attrWriteToken].(*types.AttributeValueMemberB)
	return ok && bytes.Equal(t.Value, token)
}

// newWriteToken draws the token a create or rotation leaves on
// phicrypt's item of the new version.
func newWriteToken() []byte {
	t := make([]byte, 16)
	rand.Read(t)
	return t
}

// withToken adds a write token to phicrypt's item.
func withToken(it map[string]types.AttributeValue, token []byte) map[string]types.AttributeValue {
	it[attrWriteToken] = avB(token)
	return it
}
