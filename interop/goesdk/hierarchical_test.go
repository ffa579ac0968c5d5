package goesdk

// The hierarchical keyring's interop with the Go ESDK belongs in this file
// and is not written yet: it needs phicrypt's DynamoDB key store, which
// reads and writes the table of AWS's branch key store (in progress
// separately; issue 10, "[6/12] keystore").
//
// What it is to prove (issue 10, the Go ESDK bullet):
//
//   - one keystore table in moto_server (PHICRYPT_MOTO_URL; required when
//     PHICRYPT_FULL_SUITE is set, as in kms_test.go's kmsTargets), its KMS
//     key in moto_server and in kmsmock;
//   - the MPL's key store (mpl CreateKeyStore / CreateKey / VersionKey) and
//     phicrypt's DynamoDB store over that one table, with the same logical
//     key store name;
//   - messages of CreateAwsKmsHierarchicalKeyring read by phicrypt's
//     hierarchical keyring and the reverse, both suites, the sizes and
//     contexts of matrix() (contexts[2]'s UTF-8 order matters here: the
//     branch key wrapping AAD ends with the serialized context);
//   - across a rotation made on the AWS side (VersionKey) and one made on
//     phicrypt's side, each side reading the other's messages under both
//     versions;
//   - every check counted with crossChecked().
