package kmsmock_test

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

var keyARNPattern = regexp.MustCompile(`^arn:aws:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$`)

func conformanceCases() []conformanceCase {
	var cases []conformanceCase
	for _, group := range [][]conformanceCase{keyCases(), aliasCases(), cryptoCases(), stateCases(), rotationCases(), policyCases()} {
		cases = append(cases, group...)
	}
	return cases
}

func keyCases() []conformanceCase {
	return []conformanceCase{
		{name: "CreateKey returns an enabled key with an ARN", ops: []string{"CreateKey"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			return first(
				check(keyARNPattern.MatchString(aws.ToString(md.Arn)), "ARN %q is not arn:aws:kms:REGION:ACCOUNT:key/UUID", aws.ToString(md.Arn)),
				check(md.KeyState == types.KeyStateEnabled && md.Enabled, "new key state %s", md.KeyState),
				check(md.CreationDate != nil && time.Since(*md.CreationDate) < time.Hour, "CreationDate %v", md.CreationDate),
			)
		}},
		{name: "CreateKey defaults to a symmetric encryption key", ops: []string{"CreateKey"}, moto: "moto leaves KeyUsage out unless the request names it", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			return first(
				check(md.KeySpec == types.KeySpecSymmetricDefault, "KeySpec %s", md.KeySpec),
				check(md.KeyUsage == types.KeyUsageTypeEncryptDecrypt, "KeyUsage %s", md.KeyUsage),
				check(slices.Equal(md.EncryptionAlgorithms, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}), "algorithms %v", md.EncryptionAlgorithms),
			)
		}},
		{name: "DescribeKey resolves key id, key ARN, alias name and alias ARN", ops: []string{"DescribeKey", "CreateAlias"}, run: func(e *env) error {
			md, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			aliasARN := "arn:aws:kms:" + e.target.region + ":" + e.account + ":" + alias
			for _, ref := range []string{aws.ToString(md.KeyId), aws.ToString(md.Arn), alias, aliasARN} {
				got, err := e.describe(ref)
				if err != nil {
					return fmt.Errorf("DescribeKey(%s): %w", ref, err)
				}
				if aws.ToString(got.KeyId) != aws.ToString(md.KeyId) {
					return fmt.Errorf("DescribeKey(%s) found key %s", ref, aws.ToString(got.KeyId))
				}
			}
			return nil
		}},
		{name: "DescribeKey of an unknown key is NotFoundException", ops: []string{"DescribeKey"}, run: func(e *env) error {
			_, err := e.describe("0b1c2d3e-0000-4000-8000-000000000000")
			return expect[*types.NotFoundException](err)
		}},
		{name: "ListKeys pages through every key", ops: []string{"ListKeys"}, moto: "moto ignores Limit", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			var seen []string
			var marker *string
			for pages := 0; ; pages++ {
				if pages > 10000 {
					return fmt.Errorf("ListKeys never stops paging")
				}
				out, err := e.admin().ListKeys(e.ctx, &kms.ListKeysInput{Limit: aws.Int32(2), Marker: marker})
				if err != nil {
					return err
				}
				if len(out.Keys) > 2 {
					return fmt.Errorf("ListKeys returned %d keys with Limit 2", len(out.Keys))
				}
				for _, k := range out.Keys {
					seen = append(seen, aws.ToString(k.KeyId))
				}
				if !out.Truncated {
					break
				}
				marker = out.NextMarker
			}
			return check(slices.Contains(seen, aws.ToString(md.KeyId)), "ListKeys did not list the new key")
		}},
		{name: "ListKeys refuses a Limit above 1000", ops: []string{"ListKeys"}, moto: "moto ignores Limit", run: func(e *env) error {
			_, err := e.admin().ListKeys(e.ctx, &kms.ListKeysInput{Limit: aws.Int32(1001)})
			return expectCode(err, "ValidationException")
		}},
	}
}

func aliasCases() []conformanceCase {
	return []conformanceCase{
		{name: "CreateAlias refuses a name in use", ops: []string{"CreateAlias"}, run: func(e *env) error {
			md, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			_, err = e.admin().CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: md.KeyId})
			return expect[*types.AlreadyExistsException](err)
		}},
		{name: "CreateAlias refuses a name without the alias/ prefix", ops: []string{"CreateAlias"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String("not-an-alias"), TargetKeyId: md.KeyId})
			return expectCode(err, "ValidationException")
		}},
		{name: "CreateAlias refuses the reserved alias/aws/ prefix", ops: []string{"CreateAlias"}, moto: "moto reserves only the alias/aws/ names it knows", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/aws/phi"), TargetKeyId: md.KeyId})
			if err == nil {
				return fmt.Errorf("alias/aws/phi was accepted")
			}
			return nil
		}},
		{name: "UpdateAlias points the alias at another key", ops: []string{"UpdateAlias", "Encrypt"}, run: func(e *env) error {
			_, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			other, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.admin().UpdateAlias(e.ctx, &kms.UpdateAliasInput{AliasName: aws.String(alias), TargetKeyId: other.KeyId}); err != nil {
				return err
			}
			out, err := e.admin().Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(alias), Plaintext: []byte("x")})
			if err != nil {
				return err
			}
			return check(aws.ToString(out.KeyId) == aws.ToString(other.Arn), "Encrypt via the alias used %s, want %s", aws.ToString(out.KeyId), aws.ToString(other.Arn))
		}},
		{name: "UpdateAlias of a missing alias is NotFoundException", ops: []string{"UpdateAlias"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().UpdateAlias(e.ctx, &kms.UpdateAliasInput{AliasName: aws.String(uniqueAlias()), TargetKeyId: md.KeyId})
			return expect[*types.NotFoundException](err)
		}},
		{name: "DeleteAlias removes the name", ops: []string{"DeleteAlias"}, run: func(e *env) error {
			_, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			if _, err := e.admin().DeleteAlias(e.ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)}); err != nil {
				return err
			}
			_, err = e.describe(alias)
			return expect[*types.NotFoundException](err)
		}},
		{name: "ListAliases filters by key", ops: []string{"ListAliases"}, run: func(e *env) error {
			md, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			out, err := e.admin().ListAliases(e.ctx, &kms.ListAliasesInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			if len(out.Aliases) != 1 {
				return fmt.Errorf("ListAliases for the key returned %d aliases, want 1", len(out.Aliases))
			}
			a := out.Aliases[0]
			return first(
				check(aws.ToString(a.AliasName) == alias, "alias name %q", aws.ToString(a.AliasName)),
				check(aws.ToString(a.TargetKeyId) == aws.ToString(md.KeyId), "target %q", aws.ToString(a.TargetKeyId)),
				check(aws.ToString(a.AliasArn) == "arn:aws:kms:"+e.target.region+":"+e.account+":"+alias, "alias ARN %q", aws.ToString(a.AliasArn)),
			)
		}},
	}
}

func cryptoCases() []conformanceCase {
	return []conformanceCase{
		{name: "Encrypt and Decrypt round-trip under a context without naming the key", ops: []string{"Encrypt", "Decrypt"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("mrn 12345"), tenantA)
			if err != nil {
				return err
			}
			out, err := e.admin().Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: tenantA})
			if err != nil {
				return err
			}
			return first(
				check(string(out.Plaintext) == "mrn 12345", "Decrypt returned other plaintext"),
				check(aws.ToString(out.KeyId) == aws.ToString(md.Arn), "Decrypt KeyId %q, want the key ARN", aws.ToString(out.KeyId)),
				check(!bytes.Contains(blob, []byte("mrn 12345")), "the blob contains the plaintext"),
			)
		}},
		{name: "Encrypt through an alias ARN", ops: []string{"Encrypt"}, run: func(e *env) error {
			md, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			out, err := e.admin().Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String("arn:aws:kms:" + e.target.region + ":" + e.account + ":" + alias), Plaintext: []byte("x")})
			if err != nil {
				return err
			}
			return check(aws.ToString(out.KeyId) == aws.ToString(md.Arn), "Encrypt KeyId %q", aws.ToString(out.KeyId))
		}},
		{name: "Decrypt with a wrong context value is InvalidCiphertextException", ops: []string{"Decrypt"}, run: func(e *env) error {
			return e.decryptWithContext(map[string]string{"tenant": "b", "purpose": "phi"})
		}},
		{name: "Decrypt with a missing context pair is InvalidCiphertextException", ops: []string{"Decrypt"}, run: func(e *env) error {
			return e.decryptWithContext(map[string]string{"tenant": "a"})
		}},
		{name: "Decrypt with an extra context pair is InvalidCiphertextException", ops: []string{"Decrypt"}, run: func(e *env) error {
			return e.decryptWithContext(map[string]string{"tenant": "a", "purpose": "phi", "extra": "1"})
		}},
		{name: "Decrypt naming another key is IncorrectKeyException", ops: []string{"Decrypt"}, moto: "moto answers AccessDeniedException", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			other, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("x"), nil)
			if err != nil {
				return err
			}
			_, err = e.admin().Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: other.KeyId})
			return expect[*types.IncorrectKeyException](err)
		}},
		{name: "Decrypt of a tampered blob is InvalidCiphertextException", ops: []string{"Decrypt"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("x"), nil)
			if err != nil {
				return err
			}
			blob[len(blob)-1] ^= 1
			_, err = e.decrypt(e.admin(), blob, nil)
			return expect[*types.InvalidCiphertextException](err)
		}},
		{name: "Encrypt takes at most 4096 bytes", ops: []string{"Encrypt"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, okErr := e.encrypt(e.admin(), aws.ToString(md.KeyId), make([]byte, 4096), nil)
			_, bigErr := e.encrypt(e.admin(), aws.ToString(md.KeyId), make([]byte, 4097), nil)
			return first(okErr, expectCode(bigErr, "ValidationException"))
		}},
		{name: "GenerateDataKey AES_256 returns 32 bytes that Decrypt returns", ops: []string{"GenerateDataKey", "Decrypt"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			out, err := e.admin().GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: tenantA})
			if err != nil {
				return err
			}
			pt, err := e.decrypt(e.admin(), out.CiphertextBlob, tenantA)
			if err != nil {
				return err
			}
			return first(
				check(len(out.Plaintext) == 32, "data key is %d bytes", len(out.Plaintext)),
				check(bytes.Equal(pt, out.Plaintext), "Decrypt returned another data key"),
				check(aws.ToString(out.KeyId) == aws.ToString(md.Arn), "KeyId %q", aws.ToString(out.KeyId)),
			)
		}},
		{name: "GenerateDataKey NumberOfBytes 64", ops: []string{"GenerateDataKey"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			out, err := e.admin().GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, NumberOfBytes: aws.Int32(64)})
			if err != nil {
				return err
			}
			return check(len(out.Plaintext) == 64, "data key is %d bytes", len(out.Plaintext))
		}},
		{name: "GenerateDataKey with both KeySpec and NumberOfBytes is ValidationException", ops: []string{"GenerateDataKey"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)})
			return expectCode(err, "ValidationException")
		}},
		{name: "GenerateDataKey with neither KeySpec nor NumberOfBytes is ValidationException", ops: []string{"GenerateDataKey"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId})
			return expectCode(err, "ValidationException")
		}},
		{name: "GenerateDataKeyWithoutPlaintext returns only the blob", ops: []string{"GenerateDataKeyWithoutPlaintext"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			out, err := e.admin().GenerateDataKeyWithoutPlaintext(e.ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: tenantA})
			if err != nil {
				return err
			}
			pt, err := e.decrypt(e.admin(), out.CiphertextBlob, tenantA)
			if err != nil {
				return err
			}
			return check(len(pt) == 32, "the blob holds %d bytes, want 32", len(pt))
		}},
		{name: "GenerateRandom returns fresh bytes", ops: []string{"GenerateRandom"}, run: func(e *env) error {
			a, err := e.admin().GenerateRandom(e.ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
			if err != nil {
				return err
			}
			b, err := e.admin().GenerateRandom(e.ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
			if err != nil {
				return err
			}
			return check(len(a.Plaintext) == 32 && !bytes.Equal(a.Plaintext, b.Plaintext), "GenerateRandom returned %d bytes or repeated itself", len(a.Plaintext))
		}},
		{name: "GenerateRandom refuses more than 1024 bytes", ops: []string{"GenerateRandom"}, run: func(e *env) error {
			_, err := e.admin().GenerateRandom(e.ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(1025)})
			return expectCode(err, "ValidationException")
		}},
		{name: "ReEncrypt moves a blob to another key and context", ops: []string{"ReEncrypt"}, run: func(e *env) error {
			src, err := e.newKey("")
			if err != nil {
				return err
			}
			dst, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(src.KeyId), []byte("dk"), tenantA)
			if err != nil {
				return err
			}
			newCtx := map[string]string{"tenant": "a", "v": "2"}
			out, err := e.admin().ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: tenantA,
				DestinationKeyId: dst.KeyId, DestinationEncryptionContext: newCtx})
			if err != nil {
				return err
			}
			pt, err := e.decrypt(e.admin(), out.CiphertextBlob, newCtx)
			_, oldCtxErr := e.decrypt(e.admin(), out.CiphertextBlob, tenantA)
			return first(err,
				check(string(pt) == "dk", "ReEncrypt changed the plaintext"),
				check(aws.ToString(out.KeyId) == aws.ToString(dst.Arn), "KeyId %q", aws.ToString(out.KeyId)),
				check(aws.ToString(out.SourceKeyId) == aws.ToString(src.Arn), "SourceKeyId %q", aws.ToString(out.SourceKeyId)),
				expect[*types.InvalidCiphertextException](oldCtxErr))
		}},
		{name: "ReEncrypt naming the wrong source key is IncorrectKeyException", ops: []string{"ReEncrypt"}, moto: "moto ignores SourceKeyId", run: func(e *env) error {
			src, err := e.newKey("")
			if err != nil {
				return err
			}
			other, err := e.newKey("")
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), aws.ToString(src.KeyId), []byte("dk"), nil)
			if err != nil {
				return err
			}
			_, err = e.admin().ReEncrypt(e.ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceKeyId: other.KeyId, DestinationKeyId: other.KeyId})
			return expect[*types.IncorrectKeyException](err)
		}},
	}
}

// decryptWithContext encrypts under tenantA and expects Decrypt under ctx to
// fail as InvalidCiphertextException.
func (e *env) decryptWithContext(ctx map[string]string) error {
	md, err := e.newKey("")
	if err != nil {
		return err
	}
	blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("x"), tenantA)
	if err != nil {
		return err
	}
	_, err = e.decrypt(e.admin(), blob, ctx)
	return expect[*types.InvalidCiphertextException](err)
}
