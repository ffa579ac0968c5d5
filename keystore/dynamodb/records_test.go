package dynamodb_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
)

// TestRecordLayout: a record is one item in a partition of its kind whose
// key begins with NUL (never a branch key id), its value binary; a branch
// key of the same name is untouched, and AWS's items keep their layout.
func TestRecordLayout(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	v := newVersion("policy")
	require.NoError(t, s.CreateWithCopies(ctx, v, randomBytes(184), randomBytes(184)))
	before := names(item(t, c, table, "policy", "branch:ACTIVE"))

	from := time.Now()
	_, err := s.PutRecord(ctx, "policy", "tenant", []byte("one"), 0)
	require.NoError(t, err)
	rev, err := s.PutRecord(ctx, "policy", "tenant", []byte{0, 1, 2}, 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, rev)

	got := item(t, c, table, "\x00phicrypt:records:policy", "record:tenant")
	require.Equal(t, []string{"branch-key-id", "phicrypt-schema", "put-token-1", "put-token-2", "revision", "type", "updated-at", "value"}, names(got))
	for rev, slot := range map[uint64]string{1: "put-token-1", 2: "put-token-2"} {
		tok := got[slot].(*types.AttributeValueMemberB).Value
		require.Len(t, tok, 24, "the revision (8 bytes) and the put's token (16)")
		require.Equal(t, rev, binary.BigEndian.Uint64(tok))
	}
	require.NotEqual(t, got["put-token-1"].(*types.AttributeValueMemberB).Value[8:], got["put-token-2"].(*types.AttributeValueMemberB).Value[8:])
	require.Equal(t, N("1"), got["phicrypt-schema"])
	require.Equal(t, N("2"), got["revision"])
	require.Equal(t, B([]byte{0, 1, 2}), got["value"])
	at, err := time.Parse("2006-01-02T15:04:05.000000Z", got["updated-at"].(*types.AttributeValueMemberS).Value)
	require.NoError(t, err)
	require.False(t, at.Before(from.UTC().Truncate(time.Microsecond)))

	require.Equal(t, before, names(item(t, c, table, "policy", "branch:ACTIVE")))
	ids, err := s.IDs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"policy"}, ids)
	vs, err := s.List(ctx, "policy")
	require.NoError(t, err)
	require.Len(t, vs, 1)
}

// TestRecordItemsChecked: a record item PutRecord could not have written
// is refused: a newer schema with keystore.ErrUnsupportedSchema, anything
// else with ErrCorrupt; neither names the record.
func TestRecordItemsChecked(t *testing.T) {
	const name = "MRN-000777"
	cases := map[string]struct {
		edit func(it map[string]types.AttributeValue)
		want error
	}{
		"newer schema":        {func(it map[string]types.AttributeValue) { it["phicrypt-schema"] = N("2") }, keystore.ErrUnsupportedSchema},
		"no schema":           {func(it map[string]types.AttributeValue) { delete(it, "phicrypt-schema") }, keystore.ErrUnsupportedSchema},
		"extra attribute":     {func(it map[string]types.AttributeValue) { it["extra"] = S("x") }, dynamodb.ErrCorrupt},
		"value as a string":   {func(it map[string]types.AttributeValue) { it["value"] = S("v") }, dynamodb.ErrCorrupt},
		"revision 0":          {func(it map[string]types.AttributeValue) { it["revision"] = N("0") }, dynamodb.ErrCorrupt},
		"negative revision":   {func(it map[string]types.AttributeValue) { it["revision"] = N("-1") }, dynamodb.ErrCorrupt},
		"huge revision":       {func(it map[string]types.AttributeValue) { it["revision"] = N("99999999999999999999") }, dynamodb.ErrCorrupt},
		"unreadable time":     {func(it map[string]types.AttributeValue) { it["updated-at"] = S("yesterday") }, dynamodb.ErrCorrupt},
		"revision as string":  {func(it map[string]types.AttributeValue) { it["revision"] = S("1") }, dynamodb.ErrCorrupt},
		"value too long":      {func(it map[string]types.AttributeValue) { it["value"] = B(make([]byte, keystore.MaxRecordValueLen+1)) }, dynamodb.ErrCorrupt},
		"update time missing": {func(it map[string]types.AttributeValue) { delete(it, "updated-at"); it["x"] = S("x") }, dynamodb.ErrCorrupt},
		"no put token":        {func(it map[string]types.AttributeValue) { delete(it, "put-token-1") }, dynamodb.ErrCorrupt},
		"short put token":     {func(it map[string]types.AttributeValue) { it["put-token-1"] = B(make([]byte, 23)) }, dynamodb.ErrCorrupt},
		"put token as string": {func(it map[string]types.AttributeValue) { it["put-token-1"] = S("x") }, dynamodb.ErrCorrupt},
		"token of another revision": {func(it map[string]types.AttributeValue) {
			it["put-token-1"] = B(append(binary.BigEndian.AppendUint64(nil, 9), make([]byte, 16)...))
		}, dynamodb.ErrCorrupt},
		"token of a later revision": {func(it map[string]types.AttributeValue) {
			it["put-token-2"] = B(append(binary.BigEndian.AppendUint64(nil, 2), make([]byte, 16)...))
		}, dynamodb.ErrCorrupt},
		"token of revision 0": {func(it map[string]types.AttributeValue) { it["put-token-0"] = B(make([]byte, 24)) }, dynamodb.ErrCorrupt},
		"slot and old token":  {func(it map[string]types.AttributeValue) { it["put-token"] = B(make([]byte, 16)) }, dynamodb.ErrCorrupt},
		"slot out of range": {func(it map[string]types.AttributeValue) {
			it["put-token-9"] = B(append(binary.BigEndian.AppendUint64(nil, 9), make([]byte, 16)...))
		}, dynamodb.ErrCorrupt},
	}
	for what, c := range cases {
		t.Run(what, func(t *testing.T) {
			cl, table, s := freshTable(t)
			ctx := t.Context()
			_, err := s.PutRecord(ctx, "policy", name, []byte("v"), 0)
			require.NoError(t, err)
			it := item(t, cl, table, "\x00phicrypt:records:policy", "record:"+name)
			c.edit(it)
			_, err = cl.PutItem(ctx, &awsdynamodb.PutItemInput{TableName: &table, Item: it})
			require.NoError(t, err)

			_, err = s.GetRecord(ctx, "policy", name)
			require.ErrorIs(t, err, c.want)
			require.NotContains(t, err.Error(), name)
			_, err = s.ListRecords(ctx, "policy")
			require.ErrorIs(t, err, c.want)
		})
	}
}

// TestRecordPutTokens: every put keeps its token in the slot of its
// revision mod 8, so the slots hold the last 8 revisions' tokens; a record
// written before the slots (one 16-byte put-token) is still read, and the
// next put replaces its token with a slot.
func TestRecordPutTokens(t *testing.T) {
	c, table, s := freshTable(t)
	ctx := t.Context()
	for rev := uint64(0); rev < 11; rev++ {
		_, err := s.PutRecord(ctx, "policy", "tenant", []byte(fmt.Sprint(rev+1)), rev)
		require.NoError(t, err)
	}
	got := item(t, c, table, "\x00phicrypt:records:policy", "record:tenant")
	require.Len(t, got, 6+8)
	for k := range uint64(8) {
		tok := got[fmt.Sprintf("put-token-%d", k)].(*types.AttributeValueMemberB).Value
		rev := binary.BigEndian.Uint64(tok)
		require.Equal(t, k, rev%8)
		require.True(t, rev >= 4 && rev <= 11, "slot %d holds revision %d, not one of the last 8", k, rev)
	}

	// An item as phicrypt wrote it before the slots.
	old := map[string]types.AttributeValue{
		"branch-key-id": S("\x00phicrypt:records:policy"), "type": S("record:before"),
		"phicrypt-schema": N("1"), "value": B([]byte("old")), "revision": N("7"),
		"updated-at": S("2026-01-02T03:04:05.000006Z"), "put-token": B(randomBytes(16)),
	}
	put(t, c, table, old)
	r, err := s.GetRecord(ctx, "policy", "before")
	require.NoError(t, err)
	require.Equal(t, "old", string(r.Value))
	require.EqualValues(t, 7, r.Revision)
	rs, err := s.ListRecords(ctx, "policy")
	require.NoError(t, err)
	require.Len(t, rs, 2)
	_, err = s.PutRecord(ctx, "policy", "before", []byte("new"), 6)
	require.ErrorIs(t, err, keystore.ErrConflict)
	rev, err := s.PutRecord(ctx, "policy", "before", []byte("new"), 7)
	require.NoError(t, err)
	require.EqualValues(t, 8, rev)
	got = item(t, c, table, "\x00phicrypt:records:policy", "record:before")
	require.Equal(t, []string{"branch-key-id", "phicrypt-schema", "put-token-0", "revision", "type", "updated-at", "value"}, names(got))
	r, err = s.GetRecord(ctx, "policy", "before")
	require.NoError(t, err)
	require.Equal(t, "new", string(r.Value))

	for what, tok := range map[string]types.AttributeValue{"short": B(randomBytes(15)), "string": S("x")} {
		old["put-token"] = tok
		put(t, c, table, old)
		_, err = s.GetRecord(ctx, "policy", "before")
		require.ErrorIs(t, err, dynamodb.ErrCorrupt, what)
	}
}
