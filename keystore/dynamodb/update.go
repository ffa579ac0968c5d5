package dynamodb

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/phicrypt/phicrypt/keystore"
)

// SetState moves a version between decrypt_only and retired, in phicrypt's
// item only (AWS's items have no state; see Store). One transaction checks
// that the version's branch:version item exists and that branch:ACTIVE
// does not name it, and updates phicrypt's item on condition that it is in
// state from.
func (s *Store) SetState(ctx context.Context, id, version string, from, to keystore.State) error {
	if err := s.use(); err != nil {
		return err
	}
	if err := checkKeyVersion(id, version); err != nil {
		return err
	}
	ok := func(st keystore.State) bool { return st == keystore.StateDecryptOnly || st == keystore.StateRetired }
	if !ok(from) || !ok(to) || from == to {
		return fmt.Errorf("%w: SetState moves a version between decrypt_only and retired, not %v to %v; the active version changes only through Rotate",
			keystore.ErrInvalid, from, to)
	}
	cond := "attribute_not_exists(#st) OR #st = :from"
	if from == keystore.StateRetired {
		cond = "#st = :from"
	}
	_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		s.mustExist(id, versionType(version)),
		s.notActive(id, version),
		{Update: &types.Update{
			TableName:                &s.table,
			Key:                      key(id, metaType(version)),
			UpdateExpression:         aws.String("SET #st = :to, #sc = :one"),
			ConditionExpression:      &cond,
			ExpressionAttributeNames: map[string]string{"#st": attrState, "#sc": attrSchema},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":from": avS(stateName(from)), ":to": avS(stateName(to)), ":one": avN(metaSchema)},
		}},
	}})
	codes := cancelCodes(err)
	switch {
	case codes == nil && err != nil:
		return wrap("changing the state of version "+version+" of "+keyRef(id), err)
	case codes == nil:
		return nil
	case codes[0] == "ConditionalCheckFailed":
		return fmt.Errorf("%w: %s has no version %s", keystore.ErrNotFound, keyRef(id), version)
	}
	return fmt.Errorf("%w: version %s of %s is not %v", keystore.ErrConflict, version, keyRef(id), from)
}

func stateName(st keystore.State) string {
	if st == keystore.StateRetired {
		return stateRetired
	}
	return stateDecryptOnly
}

// mustExist checks that item typ of id exists.
func (s *Store) mustExist(id, typ string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                &s.table,
		Key:                      key(id, typ),
		ConditionExpression:      aws.String("attribute_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	}}
}

// notActive checks that the branch:ACTIVE item of id exists and does not
// name version.
func (s *Store) notActive(id, version string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                 &s.table,
		Key:                       key(id, typeActive),
		ConditionExpression:       aws.String("attribute_exists(#id) AND #v <> :v"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID, "#v": attrVersion},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": avS(versionType(version))},
	}}
}

// Rewrap replaces the wrapped key and kms-arn of a version that is not the
// active one, on condition that its enc is still oldCiphertext. The active
// version is refused (keystore.ErrInvalid): its branch:ACTIVE copy must move
// with it, through RewrapWithCopy.
func (s *Store) Rewrap(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext []byte) error {
	return s.rewrap(ctx, id, version, oldCiphertext, newARN, newCiphertext, nil)
}

// RewrapWithCopy is Rewrap for the active version: in the same transaction
// it replaces the branch:ACTIVE item's enc with activeCopy (the new
// ciphertext re-encrypted under the ACTIVE context, see Store) and its
// kms-arn with newARN, on condition that it still names version.
// keystore.ErrConflict if version is no longer active (rewrap it with
// Rewrap) or its ciphertext is no longer oldCiphertext.
func (s *Store) RewrapWithCopy(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext, activeCopy []byte) error {
	if err := checkCiphertext("the ACTIVE copy of a wrapped branch key", activeCopy); err != nil {
		return err
	}
	return s.rewrap(ctx, id, version, oldCiphertext, newARN, newCiphertext, activeCopy)
}

func (s *Store) rewrap(ctx context.Context, id, version string, oldCiphertext []byte, newARN string, newCiphertext, activeCopy []byte) error {
	if err := s.use(); err != nil {
		return err
	}
	if err := checkKeyVersion(id, version); err != nil {
		return err
	}
	if err := checkCiphertext("the expected old wrapped key", oldCiphertext); err != nil {
		return err
	}
	if err := checkWrapped("a wrapped branch key", newARN, newCiphertext); err != nil {
		return err
	}
	second := s.notActive(id, version)
	if activeCopy != nil {
		second = types.TransactWriteItem{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       key(id, typeActive),
			UpdateExpression:          aws.String("SET #enc = :copy, #arn = :arn"),
			ConditionExpression:       aws.String("#v = :v"),
			ExpressionAttributeNames:  map[string]string{"#enc": attrEnc, "#arn": attrKMSARN, "#v": attrVersion},
			ExpressionAttributeValues: map[string]types.AttributeValue{":copy": avB(activeCopy), ":arn": avS(newARN), ":v": avS(versionType(version))},
		}}
	}
	_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 &s.table,
			Key:                       key(id, versionType(version)),
			UpdateExpression:          aws.String("SET #enc = :new, #arn = :arn"),
			ConditionExpression:       aws.String("attribute_exists(#id) AND #enc = :old"),
			ExpressionAttributeNames:  map[string]string{"#id": attrID, "#enc": attrEnc, "#arn": attrKMSARN},
			ExpressionAttributeValues: map[string]types.AttributeValue{":new": avB(newCiphertext), ":arn": avS(newARN), ":old": avB(oldCiphertext)},
		}},
		second,
	}})
	codes := cancelCodes(err)
	switch {
	case codes == nil && err != nil:
		return wrap("rewrapping version "+version+" of "+keyRef(id), err)
	case codes == nil:
		return nil
	case isTransactionConflict(codes):
		return fmt.Errorf("%w: version %s of %s is being changed by another process", keystore.ErrConflict, version, keyRef(id))
	case codes[0] == "ConditionalCheckFailed":
		if cur, err := s.Get(ctx, id, version); err != nil {
			return err // ErrNotFound
		} else if cur.State == keystore.StateDestroyed {
			return keystore.DestroyedError(id, version)
		}
		return fmt.Errorf("%w: the wrapped key of version %s of %s changed (another rewrap won)", keystore.ErrConflict, version, keyRef(id))
	case activeCopy == nil:
		return fmt.Errorf("%w: version %s of %s is the active one: rewrap it with RewrapWithCopy, which moves its branch:ACTIVE copy too", keystore.ErrInvalid, version, keyRef(id))
	}
	return fmt.Errorf("%w: version %s of %s is no longer the active one: rewrap it with Rewrap", keystore.ErrConflict, version, keyRef(id))
}

// AddUsage adds n to the usage counter in phicrypt's item of the version
// (an atomic ADD, on condition that the version is not retired) and returns
// the new total, saturating at keystore.MaxUsage. A version AWS's KeyStore
// made has no phicrypt item yet: the first AddUsage makes it.
func (s *Store) AddUsage(ctx context.Context, id, version string, n uint64) (uint64, error) {
	if err := s.use(); err != nil {
		return 0, err
	}
	if err := checkKeyVersion(id, version); err != nil {
		return 0, err
	}
	if n < 1 || n > keystore.MaxUsageIncrement {
		return 0, fmt.Errorf("%w: AddUsage adds 1 to %d uses, not %d", keystore.ErrInvalid, uint64(keystore.MaxUsageIncrement), n)
	}
	// The count carries a token of this call: when the SDK retries an
	// update whose answer was lost after it was applied, the retry finds
	// the token and fails its condition, and the count is read instead
	// of being added twice.
	token := newWriteToken()
	for range 3 {
		out, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                &s.table,
			Key:                      key(id, metaType(version)),
			UpdateExpression:         aws.String("ADD #u :n SET #ut = :tok"),
			ConditionExpression:      aws.String("attribute_exists(#id) AND #sc = :one AND (attribute_not_exists(#st) OR NOT #st IN (:retired, :destroyed)) AND (attribute_not_exists(#ut) OR #ut <> :tok)"),
			ExpressionAttributeNames: map[string]string{"#u": attrUsage, "#id": attrID, "#sc": attrSchema, "#st": attrState, "#ut": attrUsageToken},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":n": avN(strconv.FormatUint(n, 10)), ":one": avN(metaSchema), ":retired": avS(stateRetired), ":destroyed": avS(stateDestroyed),
				":tok": avB(token)},
			ReturnValues: types.ReturnValueUpdatedNew,
		})
		if err == nil {
			u, ok := out.Attributes[attrUsage].(*types.AttributeValueMemberN)
			if !ok || len(u.Value) > maxNumberLen {
				return 0, fmt.Errorf("%w: DynamoDB answered no usage counter", ErrCorrupt)
			}
			total, err := parseUsage(u.Value)
			if err != nil {
				return 0, fmt.Errorf("%w: DynamoDB answered an unreadable usage counter", ErrCorrupt)
			}
			return total, nil
		}
		if !isConditionFailed(err) {
			return 0, wrap("counting the usage of version "+version+" of "+keyRef(id), err)
		}
		if total, ok := s.countedOwn(ctx, id, version, token); ok {
			return total, nil
		}
		if err := s.whyNotCounted(ctx, id, version); err != nil {
			return 0, err
		}
		// phicrypt's item was made just now: count again.
	}
	return 0, fmt.Errorf("%w: version %s of %s is being changed by another process", keystore.ErrConflict, version, keyRef(id))
}

// whyNotCounted explains a failed AddUsage condition: the version is
// retired (ErrConflict), of an unknown schema, or missing (ErrNotFound); or
// it has no phicrypt item yet, which it then makes.
// countedOwn reports whether phicrypt's item of the version carries this
// call's usage token (an earlier attempt of the same update was applied),
// and the count it holds now.
func (s *Store) countedOwn(ctx context.Context, id, version string, token []byte) (uint64, bool) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(id, metaType(version)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, false
	}
	t, ok := out.Item[attrUsageToken].(*types.AttributeValueMemberB)
	if !ok || !bytes.Equal(t.Value, token) {
		return 0, false
	}
	u, ok := out.Item[attrUsage].(*types.AttributeValueMemberN)
	if !ok || len(u.Value) > maxNumberLen {
		return 0, false
	}
	total, err := parseUsage(u.Value)
	return total, err == nil
}

func (s *Store) whyNotCounted(ctx context.Context, id, version string) error {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(id, metaType(version)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return wrap("reading version "+version+" of "+keyRef(id), err)
	}
	if len(out.Item) > 0 {
		m, err := decodeMeta(id, out.Item)
		if err != nil {
			return err
		}
		if m.retired {
			return fmt.Errorf("%w: %s version %s is retired; nothing may be encrypted under it", keystore.ErrConflict, keyRef(id), version)
		}
		if m.destroyed {
			return keystore.DestroyedError(id, version)
		}
		return nil
	}
	ver, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(id, versionType(version)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return wrap("reading version "+version+" of "+keyRef(id), err)
	}
	if len(ver.Item) == 0 {
		return fmt.Errorf("%w: %s has no version %s", keystore.ErrNotFound, keyRef(id), version)
	}
	_, err = s.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                &s.table,
		Item:                     metaItem(keystore.BranchKeyVersion{BranchKeyID: id, Version: version}),
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	})
	if err != nil && !isConditionFailed(err) {
		return wrap("counting the usage of version "+version+" of "+keyRef(id), err)
	}
	return nil
}
