package kmsmock_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const motoNoKeyState = "moto does not refuse operations on disabled or pending-deletion keys"

// sealed makes a key and a blob under tenantA.
func (e *env) sealed() (*types.KeyMetadata, []byte, error) {
	md, err := e.newKey("")
	if err != nil {
		return nil, nil, err
	}
	blob, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("phi"), tenantA)
	return md, blob, err
}

func (e *env) schedule(md *types.KeyMetadata, days int32) (*kms.ScheduleKeyDeletionOutput, error) {
	return e.admin().ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(days)})
}

func stateCases() []conformanceCase {
	return []conformanceCase{
		{name: "DisableKey makes Encrypt and Decrypt DisabledException", ops: []string{"DisableKey", "Encrypt", "Decrypt"}, moto: motoNoKeyState, run: func(e *env) error {
			md, blob, err := e.sealed()
			if err != nil {
				return err
			}
			if _, err := e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			_, encErr := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("x"), nil)
			_, decErr := e.decrypt(e.admin(), blob, tenantA)
			return first(expect[*types.DisabledException](encErr), expect[*types.DisabledException](decErr))
		}},
		{name: "GenerateDataKey on a disabled key is DisabledException", ops: []string{"GenerateDataKey", "GenerateDataKeyWithoutPlaintext"}, moto: motoNoKeyState, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			_, err1 := e.admin().GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
			_, err2 := e.admin().GenerateDataKeyWithoutPlaintext(e.ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
			return first(expect[*types.DisabledException](err1), expect[*types.DisabledException](err2))
		}},
		{name: "EnableKey restores a disabled key", ops: []string{"EnableKey", "DisableKey", "DescribeKey"}, moto: "moto fails EnableKey given a key ARN (HTTP 500)", run: func(e *env) error {
			md, blob, err := e.sealed()
			if err != nil {
				return err
			}
			if _, err := e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			disabled, err := e.describe(aws.ToString(md.KeyId))
			if err != nil {
				return err
			}
			if _, err := e.admin().EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: md.Arn}); err != nil {
				return err
			}
			_, decErr := e.decrypt(e.admin(), blob, tenantA)
			return first(decErr, check(disabled.KeyState == types.KeyStateDisabled && !disabled.Enabled, "disabled key shows %s", disabled.KeyState))
		}},
		{name: "ScheduleKeyDeletion refuses windows outside 7 to 30 days", ops: []string{"ScheduleKeyDeletion"}, moto: "moto accepts any window", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, short := e.schedule(md, 6)
			_, long := e.schedule(md, 31)
			return first(expectCode(short, "ValidationException"), expectCode(long, "ValidationException"))
		}},
		{name: "ScheduleKeyDeletion sets PendingDeletion and the deletion date", ops: []string{"ScheduleKeyDeletion", "DescribeKey"}, moto: "moto's response lacks KeyState", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			out, err := e.schedule(md, 7)
			if err != nil {
				return err
			}
			got, err := e.describe(aws.ToString(md.KeyId))
			if err != nil {
				return err
			}
			want := time.Now().Add(7 * 24 * time.Hour)
			return first(
				check(out.KeyState == types.KeyStatePendingDeletion && got.KeyState == types.KeyStatePendingDeletion, "state %s / %s", out.KeyState, got.KeyState),
				check(aws.ToInt32(out.PendingWindowInDays) == 7, "window %d", aws.ToInt32(out.PendingWindowInDays)),
				check(out.DeletionDate != nil && out.DeletionDate.Sub(want).Abs() < 2*time.Hour, "deletion date %v, want about %v", out.DeletionDate, want),
			)
		}},
		{name: "a key pending deletion refuses use with KMSInvalidStateException", ops: []string{"Encrypt", "Decrypt", "GenerateDataKey"}, moto: motoNoKeyState, run: func(e *env) error {
			md, blob, err := e.sealed()
			if err != nil {
				return err
			}
			if _, err := e.schedule(md, 7); err != nil {
				return err
			}
			_, encErr := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("x"), nil)
			_, decErr := e.decrypt(e.admin(), blob, tenantA)
			_, gdkErr := e.admin().GenerateDataKey(e.ctx, &kms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
			return first(expect[*types.KMSInvalidStateException](encErr), expect[*types.KMSInvalidStateException](decErr),
				expect[*types.KMSInvalidStateException](gdkErr))
		}},
		{name: "EnableKey on a key pending deletion is KMSInvalidStateException", ops: []string{"EnableKey"}, moto: motoNoKeyState, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.schedule(md, 7); err != nil {
				return err
			}
			_, err = e.admin().EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: md.KeyId})
			return expect[*types.KMSInvalidStateException](err)
		}},
		{name: "CancelKeyDeletion leaves the key Disabled", ops: []string{"CancelKeyDeletion", "EnableKey"}, moto: "moto returns the key id where AWS returns the key ARN", run: func(e *env) error {
			md, blob, err := e.sealed()
			if err != nil {
				return err
			}
			if _, err := e.schedule(md, 7); err != nil {
				return err
			}
			out, err := e.admin().CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			got, err := e.describe(aws.ToString(md.KeyId))
			if err != nil {
				return err
			}
			if _, err := e.admin().EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			_, decErr := e.decrypt(e.admin(), blob, tenantA)
			return first(decErr,
				check(got.KeyState == types.KeyStateDisabled, "after CancelKeyDeletion the key is %s, want Disabled", got.KeyState),
				check(got.DeletionDate == nil, "the deletion date survived cancellation"),
				check(aws.ToString(out.KeyId) == aws.ToString(md.Arn), "CancelKeyDeletion KeyId %q", aws.ToString(out.KeyId)))
		}},
		{name: "CancelKeyDeletion of a key not pending deletion is KMSInvalidStateException", ops: []string{"CancelKeyDeletion"}, moto: motoNoKeyState, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: md.KeyId})
			return expect[*types.KMSInvalidStateException](err)
		}},
		{name: "a key is deleted with its aliases when the window passes", ops: []string{"ScheduleKeyDeletion", "DescribeKey"}, needsClock: true, moto: motoNoClock, run: func(e *env) error {
			md, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			blob, err := e.encrypt(e.admin(), alias, []byte("phi"), tenantA)
			if err != nil {
				return err
			}
			if _, err := e.schedule(md, 7); err != nil {
				return err
			}
			if err := e.target.advance(6 * 24 * time.Hour); err != nil {
				return err
			}
			if _, err := e.describe(aws.ToString(md.KeyId)); err != nil {
				return fmt.Errorf("the key vanished before its deletion date: %w", err)
			}
			if err := e.target.advance(24*time.Hour + time.Minute); err != nil {
				return err
			}
			_, descErr := e.describe(aws.ToString(md.KeyId))
			_, aliasErr := e.describe(alias)
			_, decErr := e.decrypt(e.admin(), blob, tenantA)
			return first(expect[*types.NotFoundException](descErr), expect[*types.NotFoundException](aliasErr),
				check(decErr != nil, "a blob of a deleted key still decrypts"))
		}},
		{name: "administrative operations refuse an alias where AWS takes only a key id or ARN", ops: []string{"DisableKey"}, run: func(e *env) error {
			_, alias, err := e.newKeyWithAlias()
			if err != nil {
				return err
			}
			_, err = e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(alias)})
			return expect[*types.NotFoundException](err)
		}},
		{name: "an unsigned request is refused", ops: []string{"ListKeys"}, moto: "moto accepts unsigned requests", run: func(e *env) error {
			c := kms.New(kms.Options{Region: e.target.region, BaseEndpoint: aws.String(e.target.url), Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
			_, err := c.ListKeys(e.ctx, &kms.ListKeysInput{})
			return expectCode(err, "MissingAuthenticationTokenException")
		}},
	}
}

func rotationCases() []conformanceCase {
	return []conformanceCase{
		{name: "EnableKeyRotation and GetKeyRotationStatus report the period", ops: []string{"EnableKeyRotation", "GetKeyRotationStatus"}, moto: "moto does not report RotationPeriodInDays", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.admin().EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(180)}); err != nil {
				return err
			}
			st, err := e.admin().GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			return first(check(st.KeyRotationEnabled, "rotation not enabled"),
				check(aws.ToInt32(st.RotationPeriodInDays) == 180, "period %d", aws.ToInt32(st.RotationPeriodInDays)))
		}},
		{name: "EnableKeyRotation refuses a period under 90 days", ops: []string{"EnableKeyRotation"}, moto: "moto accepts any rotation period", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			_, err = e.admin().EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(89)})
			return expectCode(err, "ValidationException")
		}},
		{name: "DisableKeyRotation turns rotation off", ops: []string{"DisableKeyRotation", "GetKeyRotationStatus"}, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.admin().EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			if _, err := e.admin().DisableKeyRotation(e.ctx, &kms.DisableKeyRotationInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			st, err := e.admin().GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			return check(!st.KeyRotationEnabled, "rotation still enabled")
		}},
		{name: "EnableKeyRotation on a disabled key is DisabledException", ops: []string{"EnableKeyRotation"}, moto: motoNoKeyState, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			_, err = e.admin().EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: md.KeyId})
			return expect[*types.DisabledException](err)
		}},
		{name: "RotateKeyOnDemand keeps old blobs readable and lists the rotation", ops: []string{"RotateKeyOnDemand", "ListKeyRotations", "Decrypt"}, run: func(e *env) error {
			md, blob, err := e.sealed()
			if err != nil {
				return err
			}
			before, err := e.admin().ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			if _, err := e.admin().RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			after, err := e.admin().ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			old, oldErr := e.decrypt(e.admin(), blob, tenantA)
			fresh, err := e.encrypt(e.admin(), aws.ToString(md.KeyId), []byte("new"), nil)
			if err != nil {
				return err
			}
			pt, newErr := e.decrypt(e.admin(), fresh, nil)
			return first(oldErr, newErr,
				check(len(before.Rotations) == 0, "a new key lists %d rotations", len(before.Rotations)),
				check(len(after.Rotations) == 1 && after.Rotations[0].RotationType == types.RotationTypeOnDemand, "rotations after one on-demand rotation: %+v", after.Rotations),
				check(string(old) == "phi" && string(pt) == "new", "plaintexts changed across rotation"))
		}},
		{name: "RotateKeyOnDemand on a disabled key is DisabledException", ops: []string{"RotateKeyOnDemand"}, moto: motoNoKeyState, run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			if _, err := e.admin().DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
				return err
			}
			_, err = e.admin().RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: md.KeyId})
			return expect[*types.DisabledException](err)
		}},
		{name: "RotateKeyOnDemand allows ten rotations per key", ops: []string{"RotateKeyOnDemand"}, moto: "moto does not limit on-demand rotations", run: func(e *env) error {
			md, err := e.newKey("")
			if err != nil {
				return err
			}
			for i := range 10 {
				if _, err := e.admin().RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: md.KeyId}); err != nil {
					return fmt.Errorf("rotation %d: %w", i+1, err)
				}
			}
			_, err = e.admin().RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: md.KeyId})
			return expect[*types.LimitExceededException](err)
		}},
		{name: "automatic rotation happens when the period passes", ops: []string{"EnableKeyRotation", "ListKeyRotations"}, needsClock: true, moto: motoNoClock, run: func(e *env) error {
			md, blob, err := e.sealed()
			if err != nil {
				return err
			}
			if _, err := e.admin().EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: md.KeyId, RotationPeriodInDays: aws.Int32(90)}); err != nil {
				return err
			}
			if err := e.target.advance(91 * 24 * time.Hour); err != nil {
				return err
			}
			list, err := e.admin().ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: md.KeyId})
			if err != nil {
				return err
			}
			old, err := e.decrypt(e.admin(), blob, tenantA)
			return first(err, check(bytes.Equal(old, []byte("phi")), "old blob changed"),
				check(len(list.Rotations) == 1 && list.Rotations[0].RotationType == types.RotationTypeAutomatic, "rotations %+v", list.Rotations))
		}},
	}
}
