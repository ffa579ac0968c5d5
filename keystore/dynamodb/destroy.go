package dynamodb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/phicrypt/phicrypt/keystore"
)

// Crypto-shredding in AWS's layout. A destroyed version's branch:version
// item loses its "enc" attribute (the wrapped key) and gains
// phicrypt-state = "destroyed"; its other attributes stay, so the item is
// a tombstone: phicrypt reads it as StateDestroyed, and AWS's hierarchical
// keyring, finding no wrapped key, fails instead of unwrapping. phicrypt's
// item of the version gets state "destroyed" in the same transaction, so
// SetState and AddUsage refuse it. DestroyKey does the same to the active
// version and to the branch:ACTIVE item (which holds a second wrapped copy
// of the active version), and deletes the beacon:ACTIVE item (the beacon
// key AWS's Database Encryption SDK derives search keys from). The
// branch:ACTIVE tombstone stays, so the id is never reused: phicrypt's
// CreateWithCopies and AWS's CreateKey both condition on it not existing,
// and RotateWithCopy on it not being a tombstone.
//
// What DynamoDB erases is DynamoDB's business: the attribute is gone from
// the item at once for every reader; point-in-time recovery, on-demand
// backups, exports and DynamoDB Streams records made before the destroy
// keep the old item for their retention (see docs/OPERATIONS.md
// "Crypto-shredding").

// Destroy erases the wrapped key of a version that is not the active one:
// one transaction removes enc from its branch:version item (on condition
// that the branch:ACTIVE item does not name it) and marks phicrypt's item
// destroyed. keystore.ErrConflict for the active version (rotate first, or
// DestroyKey); nil for a version already destroyed.
func (s *Store) Destroy(ctx context.Context, id, version string) error {
	if err := s.use(); err != nil {
		return err
	}
	if err := checkKeyVersion(id, version); err != nil {
		return err
	}
	for range 3 {
		_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			s.eraseVersion(id, version),
			s.notActive(id, version),
			s.markMetaDestroyed(id, version),
		}})
		if err == nil {
			return nil
		}
		if cancelCodes(err) == nil {
			return wrap("destroying version "+version+" of "+keyRef(id), err)
		}
		cur, err := s.Get(ctx, id, version)
		switch {
		case err != nil:
			return err // ErrNotFound
		case cur.State == keystore.StateDestroyed:
			return nil
		case cur.State == keystore.StateActive:
			if _, err := s.Active(ctx, id); errors.Is(err, keystore.ErrDestroyed) {
				// A DestroyKey stopped midway: the key is marked destroyed
				// and this was its active version. Finish the job.
				return s.DestroyKey(ctx, id)
			}
			return keystore.ActiveDestroyError(id, version)
		}
		// Another write held an item (a rotation made it inactive just
		// now, or a concurrent usage count): try again.
	}
	return fmt.Errorf("%w: version %s of %s is being changed by another process", keystore.ErrConflict, version, keyRef(id))
}

// DestroyKey destroys every version of branch key id. It cannot be one
// transaction (a key may have more versions than a transaction may hold
// items), so it first turns the branch:ACTIVE item into a tombstone and
// deletes the beacon:ACTIVE item, in one transaction: from then on Active
// is keystore.ErrDestroyed and no rotation can add a version. Then it
// destroys each version, the one that was active included, one
// transaction each. A crash midway leaves the key unusable but some
// versions still holding their wrapped keys (List shows which); calling
// DestroyKey again finishes it (so does Destroy of the version that was
// active). Until then Get and List show that version as it was, active
// and with its wrapped key, while Active says keystore.ErrDestroyed. nil
// for a key already destroyed.
func (s *Store) DestroyKey(ctx context.Context, id string) error {
	if err := s.use(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       key(id, typeActive),
			UpdateExpression:          aws.String("REMOVE #enc SET #tomb = :destroyed"),
			ConditionExpression:       aws.String("attribute_exists(#id)"),
			ExpressionAttributeNames:  map[string]string{"#enc": attrEnc, "#tomb": attrTombstone, "#id": attrID},
			ExpressionAttributeValues: map[string]types.AttributeValue{":destroyed": avS(stateDestroyed)},
		}},
		{Delete: &types.Delete{TableName: &s.table, Key: key(id, typeBeacon)}},
	}})
	switch codes := cancelCodes(err); {
	case codes != nil && codes[0] == "ConditionalCheckFailed":
		return fmt.Errorf("%w: %s", keystore.ErrNotFound, keyRef(id))
	case codes != nil:
		return fmt.Errorf("%w: %s is being changed by another process; try again", keystore.ErrConflict, keyRef(id))
	case err != nil:
		return wrap("destroying "+keyRef(id), err)
	}
	vs, err := s.List(ctx, id)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.State == keystore.StateDestroyed {
			continue
		}
		_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			s.eraseVersion(id, v.Version),
			s.markMetaDestroyed(id, v.Version),
		}})
		if err != nil {
			return wrap("destroying version "+v.Version+" of "+keyRef(id), err)
		}
	}
	return nil
}

// eraseVersion removes the wrapped key of a version's branch:version item
// and marks it a tombstone, on condition that the item exists.
func (s *Store) eraseVersion(id, version string) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 &s.table,
		Key:                       key(id, versionType(version)),
		UpdateExpression:          aws.String("REMOVE #enc SET #tomb = :destroyed"),
		ConditionExpression:       aws.String("attribute_exists(#id)"),
		ExpressionAttributeNames:  map[string]string{"#enc": attrEnc, "#tomb": attrTombstone, "#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":destroyed": avS(stateDestroyed)},
	}}
}

// markMetaDestroyed sets phicrypt's item of a version to destroyed, making
// the item if AWS's KeyStore made the version (usage then reads 0).
func (s *Store) markMetaDestroyed(id, version string) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 &s.table,
		Key:                       key(id, metaType(version)),
		UpdateExpression:          aws.String("SET #st = :destroyed, #sc = :one"),
		ExpressionAttributeNames:  map[string]string{"#st": attrState, "#sc": attrSchema},
		ExpressionAttributeValues: map[string]types.AttributeValue{":destroyed": avS(stateDestroyed), ":one": avN(metaSchema)},
	}}
}
