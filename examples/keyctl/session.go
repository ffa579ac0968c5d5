package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/logging"
	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL driver, for postgres: stores
	_ "modernc.org/sqlite"             // the SQLite driver, for sqlite: stores

	"github.com/phicrypt/phicrypt/custody"
	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/keystore"
	"github.com/phicrypt/phicrypt/keystore/dynamodb"
	"github.com/phicrypt/phicrypt/keystore/postgres"
	"github.com/phicrypt/phicrypt/keystore/sqlite"
)

// needs says what a command opens.
type needs struct {
	store, kms, audit bool
	// identity: the custodian's identity is required (s.me).
	identity bool
}

// session is what one command works with: the configuration, the store,
// the custodian's KMS client and handle, the audit log and the actor's
// name.
type session struct {
	cfg    *config
	aws    aws.Config
	kms    *kms.Client
	store  keystore.Store
	keys   *custody.BranchKeys
	audit  *auditLog
	me     *identity // the custodian's identity, if configured
	actor  string
	closer []func() error
	// rewrapReport is what the rewrap this session ran did.
	rewrapReport *custody.RewrapReport
}

// open loads the configuration and opens what n asks for. Close the
// session when done.
func (a *app) open(ctx context.Context, n needs) (s *session, err error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	s = &session{cfg: cfg}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if cfg.Identity != "" {
		if s.me, err = loadIdentity(cfg.Identity); err != nil {
			return s, err
		}
	} else if n.identity {
		return s, usagef("no custodian identity: give --identity FILE (keyctl init identity makes one)")
	}
	// AWS: for KMS, a DynamoDB store, or to name the actor of audit
	// records by its access key when there is no identity.
	if n.kms || n.audit && s.me == nil || storeNeedsAWS(cfg.Store) {
		if s.aws, err = awsConfig(ctx, cfg.Region); err != nil {
			return s, err
		}
	}
	if n.store {
		if err := s.openStore(ctx); err != nil {
			return s, err
		}
	}
	if n.kms {
		s.kms = newKMSClient(s.aws, cfg.KMSEndpoint)
	}
	if n.store && n.kms {
		if cfg.KMSKeyARN == "" {
			return s, usagef("no KMS key: give --kms-key ARN or set kms_key_arn in the configuration")
		}
		s.keys, err = custody.NewBranchKeys(keyring.BranchKeysConfig{
			Store: s.store, Client: s.kms, KMSKeyARN: cfg.KMSKeyARN, LogicalStoreName: cfg.LogicalStoreName,
		})
		if err != nil {
			return s, err
		}
	}
	if n.audit {
		if s.actor, err = a.actorName(ctx, s); err != nil {
			return s, err
		}
		if s.audit, err = openAuditLog(ctx, cfg.Audit); err != nil {
			return s, err
		}
		s.closer = append(s.closer, s.audit.Close)
	}
	return s, nil
}

// Close closes what open opened, last first.
func (s *session) Close() error {
	var errs []error
	for i := len(s.closer) - 1; i >= 0; i-- {
		errs = append(errs, s.closer[i]())
	}
	s.closer = nil
	return errors.Join(errs...)
}

// actorName names who acts in the audit log: the custodian identity's name
// when one is configured, else the AWS access key id the KMS calls are
// signed with (kmsmock and IAM name the principal by it).
func (a *app) actorName(ctx context.Context, s *session) (string, error) {
	if s.me != nil {
		return s.me.Name, nil
	}
	if s.aws.Credentials == nil {
		return "", errors.New(noCredentials)
	}
	creds, err := s.aws.Credentials.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("%s (%v)", noCredentials, err)
	}
	return "aws:" + creds.AccessKeyID, nil
}

const noCredentials = "no usable AWS credentials in the environment, the shared config files or an IAM role: " +
	"set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"

// awsConfig loads the AWS SDK's default configuration: the custodian's own
// credentials, from the SDK's chain. The SDK's own log lines are dropped.
func awsConfig(ctx context.Context, region string) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(logging.Nop{})}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, usagef("no AWS region: give --region or set AWS_REGION")
	}
	return cfg, nil
}

// newKMSClient is the custodian's KMS client, at endpoint when set.
func newKMSClient(cfg aws.Config, endpoint string) *kms.Client {
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

func storeNeedsAWS(store string) bool {
	kind, _, err := storeKind(store)
	return err == nil && kind == "dynamodb"
}

// openStore opens the configured store.
func (s *session) openStore(ctx context.Context) error {
	if s.cfg.Store == "" {
		return usagef("no store: give --store or set store in the configuration")
	}
	kind, loc, err := storeKind(s.cfg.Store)
	if err != nil {
		return err
	}
	var st keystore.Store
	switch kind {
	case "file":
		st, err = keystore.OpenFileStore(loc)
	case "sqlite":
		st, err = sqlite.Open(ctx, loc)
	case "postgres":
		var db *sql.DB
		if db, err = sql.Open("pgx", loc); err != nil {
			return fmt.Errorf("opening PostgreSQL: %w", err)
		}
		s.closer = append(s.closer, db.Close)
		st, err = postgres.New(ctx, db)
	case "dynamodb":
		client := awsdynamodb.NewFromConfig(s.aws, func(o *awsdynamodb.Options) {
			if s.cfg.DynamoDBEndpoint != "" {
				o.BaseEndpoint = aws.String(s.cfg.DynamoDBEndpoint)
			}
		})
		st, err = dynamodb.New(client, loc)
	}
	if err != nil {
		return fmt.Errorf("opening the %s store: %w", kind, err)
	}
	s.store = st
	s.closer = append(s.closer, st.Close)
	return nil
}

// records is the store's records (every store of this module has them).
func (s *session) records() keystore.Records {
	recs, _ := s.store.(keystore.Records)
	return recs
}

// authority is the custody.Authority over the store's records, auditing
// to the session's log when it has one.
func (s *session) authority() (*custody.Authority, error) {
	recs, ok := s.store.(keystore.Records)
	if !ok {
		return nil, errors.New("this store keeps no records, so it cannot hold trust policies")
	}
	cfg := custody.AuthorityConfig{Store: recs}
	if s.audit != nil {
		cfg.Audit, cfg.Hasher = s.audit, s.audit.hasher
	}
	return custody.NewAuthority(cfg)
}
