package dynamodb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/phicrypt/phicrypt/keystore"
)

// Records (keystore.Records) are items of the same table, one partition
// per kind:
//
//	branch-key-id  "\x00phicrypt:records:<kind>"  (S)
//	type           "record:<name>"                (S)
//	phicrypt-schema 1 (N), value (B), revision (N), updated-at (S, as create-time),
//	put-token-<r mod 8> (B, for each of the last 8 revisions r: r as 8
//	bytes big-endian, then the 16 random bytes the put that wrote it drew)
//
// The partition key begins with NUL, which no branch key id phicrypt
// accepts contains, and no AWS KeyStore makes such an id; its sort keys
// never equal "branch:ACTIVE", so IDs (which lists branch:ACTIVE items)
// never sees a record, and AWS's readers, which get items by the
// partition of a branch key id they are given, never meet one. PutRecord
// is one conditional UpdateItem: on the item not existing (expected 0) or
// on its revision (otherwise). It sets the slot of its revision and keeps
// the others, so a put whose condition fails can tell whether it wrote
// the revision it asked for itself (an SDK retry of an attempt that was
// applied) even after other puts wrote up to 7 more revisions. Records
// are never deleted, so a failed condition is explained exactly by
// reading the item afterwards.
//
// Items written before the slots have one put-token (B, 16 bytes) instead;
// they are still read, and the next put replaces that attribute with its
// slot.
const (
	recordPartitionPrefix = "\x00phicrypt:records:"
	recordTypePrefix      = "record:"
	attrValue             = "value"      // B
	attrRevision          = "revision"   // N
	attrUpdatedAt         = "updated-at" // S, createTimeLayout
	attrPutToken          = "put-token"  // B, 16 random bytes: the single token of items written before the slots
	attrPutSlotPrefix     = "put-token-" // + decimal revision mod putSlots: B, revision (8 bytes big-endian) || token
	putSlots              = 8
	putTokenLen           = 16
	putSlotLen            = 8 + putTokenLen
	recordSchema          = "1"
	recordBaseAttrs       = 6  // branch-key-id, type, phicrypt-schema, value, revision, updated-at
	maxRevisionLen        = 19 // digits of math.MaxInt64
)

var (
	_ keystore.Records          = (*Store)(nil)
	_ keystore.RecordKindLister = (*Store)(nil)
)

func recordKey(kind, name string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrID: avS(recordPartitionPrefix + kind), attrType: avS(recordTypePrefix + name)}
}

// GetRecord implements keystore.Records with a consistent read.
func (s *Store) GetRecord(ctx context.Context, kind, name string) (keystore.Record, error) {
	if err := s.use(); err != nil {
		return keystore.Record{}, err
	}
	if err := keystore.CheckRecordKey(kind, name); err != nil {
		return keystore.Record{}, err
	}
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: recordKey(kind, name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return keystore.Record{}, wrap("reading a "+keystore.RecordRef(kind, name), err)
	}
	if len(out.Item) == 0 {
		return keystore.Record{}, keystore.RecordNotFoundError(kind, name)
	}
	return decodeRecord(kind, out.Item)
}

// PutRecord implements keystore.Records with one conditional UpdateItem.
func (s *Store) PutRecord(ctx context.Context, kind, name string, value []byte, expected uint64) (uint64, error) {
	if err := s.use(); err != nil {
		return 0, err
	}
	if err := keystore.CheckPutRecord(kind, name, value, expected); err != nil {
		return 0, err
	}
	// The token tells this call's own write from another's: UpdateItem
	// takes no idempotency token, so when the SDK retries a write whose
	// answer was lost, the retry fails its condition against the item the
	// first attempt stored, and other puts may have written the record
	// since. The slot of revision expected+1 holding this call's token is
	// that write. Setting one slot keeps the others (PutItem would replace
	// them), and REMOVE drops the single token of an item written before
	// the slots.
	token := make([]byte, putTokenLen)
	rand.Read(token)
	rev := expected + 1
	in := &dynamodb.UpdateItemInput{
		TableName:        &s.table,
		Key:              recordKey(kind, name),
		UpdateExpression: aws.String("SET #sc = :schema, #v = :value, #rev = :rev, #at = :at, #slot = :slot REMOVE #old"),
		ExpressionAttributeNames: map[string]string{
			"#sc": attrSchema, "#v": attrValue, "#rev": attrRevision, "#at": attrUpdatedAt,
			"#slot": putSlotName(rev), "#old": attrPutToken},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":schema": avN(recordSchema), ":value": avB(value), ":rev": avN(strconv.FormatUint(rev, 10)),
			":at": avS(keystore.RecordNow().Format(createTimeLayout)), ":slot": avB(putSlot(rev, token))},
	}
	if expected == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#id)")
		in.ExpressionAttributeNames["#id"] = attrID
	} else {
		in.ConditionExpression = aws.String("#rev = :expected")
		in.ExpressionAttributeValues[":expected"] = avN(strconv.FormatUint(expected, 10))
	}
	_, err := s.api.UpdateItem(ctx, in)
	switch {
	case err == nil:
		return rev, nil
	case !isConditionFailed(err):
		return 0, wrap("storing a "+keystore.RecordRef(kind, name), err)
	}
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: recordKey(kind, name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, wrap("reading a "+keystore.RecordRef(kind, name), err)
	}
	if t, ok := out.Item[putSlotName(rev)].(*types.AttributeValueMemberB); ok && bytes.Equal(t.Value, putSlot(rev, token)) {
		return rev, nil // a retried attempt of this call's own write
	}
	switch {
	case expected == 0:
		return 0, keystore.RecordExistsError(kind, name)
	case len(out.Item) == 0:
		return 0, keystore.RecordNotFoundError(kind, name)
	}
	return 0, keystore.RecordConflictError(kind, name, expected)
}

// putSlotName names the attribute that keeps the token of revision rev.
func putSlotName(rev uint64) string {
	return attrPutSlotPrefix + strconv.FormatUint(rev%putSlots, 10)
}

// putSlot is the value of revision rev's slot: rev, then the token.
func putSlot(rev uint64, token []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, putSlotLen), rev), token...)
}

// ListRecords implements keystore.Records with a consistent Query of the
// kind's partition, a page at a time, stopping past the cap.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]keystore.Record, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	if err := keystore.CheckRecordKind(kind); err != nil {
		return nil, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": avS(recordPartitionPrefix + kind)},
		ConsistentRead:            aws.Bool(true),
	}
	out := []keystore.Record{}
	for {
		page, err := s.api.Query(ctx, in)
		if err != nil {
			return nil, wrap("listing records of kind "+kind, err)
		}
		if len(out)+len(page.Items) > keystore.MaxListedRecords {
			return nil, keystore.TooManyRecordsError(kind, keystore.MaxListedRecords)
		}
		for _, it := range page.Items {
			r, err := decodeRecord(kind, it)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	slices.SortFunc(out, func(a, b keystore.Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RecordKinds implements keystore.RecordKindLister with a consistent Scan
// of the whole table (as IDs does), keeping the record partitions' keys.
func (s *Store) RecordKinds(ctx context.Context) ([]string, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	in := &dynamodb.ScanInput{
		TableName:                 &s.table,
		FilterExpression:          aws.String("begins_with(#id, :prefix)"),
		ProjectionExpression:      aws.String("#id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":prefix": avS(recordPartitionPrefix)},
		ConsistentRead:            aws.Bool(true),
	}
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxScanPages {
			return nil, fmt.Errorf("%w: the table spans more than %d pages", ErrCorrupt, maxScanPages)
		}
		out, err := s.api.Scan(ctx, in)
		if err != nil {
			return nil, wrap("listing record kinds", err)
		}
		for _, it := range out.Items {
			id, _ := str(it, attrID, len(recordPartitionPrefix)+keystore.MaxRecordKindLen)
			kind, ok := strings.CutPrefix(id, recordPartitionPrefix)
			if !ok || keystore.CheckRecordKind(kind) != nil {
				return nil, fmt.Errorf("%w: a record item has a malformed key", ErrCorrupt)
			}
			seen[kind] = true
		}
		if len(seen) > keystore.MaxRecordKinds {
			return nil, keystore.TooManyRecordKindsError()
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// decodeRecord reads a record item of kind, refusing one that PutRecord
// could not have written.
func decodeRecord(kind string, it map[string]types.AttributeValue) (keystore.Record, error) {
	typ, _ := str(it, attrType, len(recordTypePrefix)+keystore.MaxRecordNameLen)
	name, ok := strings.CutPrefix(typ, recordTypePrefix)
	ref := "a record of kind " + kind
	if ok {
		ref = keystore.RecordRef(kind, name)
	}
	if sv, ok := it[attrSchema].(*types.AttributeValueMemberN); !ok || sv.Value != recordSchema {
		return keystore.Record{}, fmt.Errorf("%w: %s is of an unknown schema", keystore.ErrUnsupportedSchema, ref)
	}
	bad := func(what string) error { return fmt.Errorf("%w: %s %s", ErrCorrupt, ref, what) }
	if id, _ := str(it, attrID, len(recordPartitionPrefix)+keystore.MaxRecordKindLen); !ok || id != recordPartitionPrefix+kind {
		return keystore.Record{}, bad("has a malformed key")
	}
	r := keystore.Record{Kind: kind, Name: name}
	if v, ok := it[attrValue].(*types.AttributeValueMemberB); ok {
		r.Value = v.Value
	}
	rev, ok := it[attrRevision].(*types.AttributeValueMemberN)
	if !ok || len(rev.Value) > maxRevisionLen || strings.TrimLeft(rev.Value, "0123456789") != "" {
		return keystore.Record{}, bad("has an unreadable revision")
	}
	r.Revision, _ = strconv.ParseUint(rev.Value, 10, 64)
	at, _ := str(it, attrUpdatedAt, maxCreateTime)
	t, err := time.Parse(createTimeLayout, at)
	if err != nil {
		return keystore.Record{}, bad("has an unreadable update time")
	}
	r.UpdatedAt = t
	if err := checkPutTokens(it, r.Revision); err != nil {
		return keystore.Record{}, bad(err.Error())
	}
	if err := r.Validate(); err != nil {
		return keystore.Record{}, bad("is out of range: " + err.Error())
	}
	return r.Normalized(), nil
}

// checkPutTokens checks that an item of revision rev has, besides its
// recordBaseAttrs, either the single put-token of an item written before
// the slots, or the slots of revisions PutRecord could have written: the
// one of rev itself, and others of earlier revisions, each in its place.
func checkPutTokens(it map[string]types.AttributeValue, rev uint64) error {
	if tok, ok := it[attrPutToken]; ok {
		if b, ok := tok.(*types.AttributeValueMemberB); !ok || len(b.Value) != putTokenLen {
			return errors.New("has an unreadable put token")
		}
		if len(it) != recordBaseAttrs+1 {
			return fmt.Errorf("has %d attributes, not %d", len(it), recordBaseAttrs+1)
		}
		return nil
	}
	if _, ok := it[putSlotName(rev)]; !ok {
		return errors.New("has no put token")
	}
	slots := 0
	for k := range uint64(putSlots) {
		v, ok := it[putSlotName(k)]
		if !ok {
			continue
		}
		slots++
		b, ok := v.(*types.AttributeValueMemberB)
		if !ok || len(b.Value) != putSlotLen {
			return errors.New("has an unreadable put token")
		}
		r := binary.BigEndian.Uint64(b.Value)
		if r == 0 || r%putSlots != k || r > rev || (r == rev) != (k == rev%putSlots) {
			return errors.New("has a put token of another revision")
		}
	}
	if len(it) != recordBaseAttrs+slots {
		return fmt.Errorf("has %d attributes, not %d", len(it), recordBaseAttrs+slots)
	}
	return nil
}
