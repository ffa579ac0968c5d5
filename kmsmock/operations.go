package kmsmock

// operations maps each supported X-Amz-Target operation to its handler. It
// is never written after package initialisation.
var operations = map[string]opFunc{
	"CreateKey":                       opCreateKey,
	"DescribeKey":                     opDescribeKey,
	"ListKeys":                        opListKeys,
	"CreateAlias":                     opCreateAlias,
	"UpdateAlias":                     opUpdateAlias,
	"DeleteAlias":                     opDeleteAlias,
	"ListAliases":                     opListAliases,
	"Encrypt":                         opEncrypt,
	"Decrypt":                         opDecrypt,
	"ReEncrypt":                       opReEncrypt,
	"GenerateDataKey":                 opGenerateDataKey,
	"GenerateDataKeyWithoutPlaintext": opGenerateDataKeyWithoutPlaintext,
	"GenerateRandom":                  opGenerateRandom,
	"EnableKey":                       opEnableKey,
	"DisableKey":                      opDisableKey,
	"ScheduleKeyDeletion":             opScheduleKeyDeletion,
	"CancelKeyDeletion":               opCancelKeyDeletion,
	"EnableKeyRotation":               opEnableKeyRotation,
	"DisableKeyRotation":              opDisableKeyRotation,
	"GetKeyRotationStatus":            opGetKeyRotationStatus,
	"RotateKeyOnDemand":               opRotateKeyOnDemand,
	"ListKeyRotations":                opListKeyRotations,
	"GetKeyPolicy":                    opGetKeyPolicy,
	"PutKeyPolicy":                    opPutKeyPolicy,
}

// Operations returns the names of the operations kmsmock implements.
func Operations() []string {
	names := make([]string, 0, len(operations))
	for name := range operations {
		names = append(names, name)
	}
	return names
}
