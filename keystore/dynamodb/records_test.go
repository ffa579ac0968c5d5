package dynamodb_test

import (
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
	require.Equal(t, []string{"branch-key-id", "phicrypt-schema", "put-token", "revision", "type", "updated-at", "value"}, names(got))
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
