package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/phicrypt/phicrypt/keyring"
	"github.com/phicrypt/phicrypt/phicrypt"
	"github.com/phicrypt/phicrypt/phicrypt/s3crypt"
)

// recoverSources are the messages a recovery rewraps: files under a
// directory and objects under an S3 prefix, each named "file:PATH"
// (relative to the directory, with slashes) or "s3:KEY", sorted; the
// position file records the last name done.
type recoverSources struct {
	dir    string
	bucket string
	s3     *s3.Client
	items  []string
}

// openSources lists the files and objects f names.
func openSources(ctx context.Context, s *session, f recoverFlags) (*recoverSources, error) {
	src := &recoverSources{dir: f.messages}
	if f.messages != "" {
		files, err := messageFiles(f.messages)
		if err != nil {
			return nil, err
		}
		for _, p := range files {
			src.items = append(src.items, "file:"+p)
		}
	}
	if f.s3 != "" {
		bucket, prefix, err := parseS3URL(f.s3)
		if err != nil {
			return nil, err
		}
		if src.s3, err = s3Client(ctx, s, f.s3Endpoint, f.s3Profile); err != nil {
			return nil, err
		}
		src.bucket = bucket
		keys, err := listObjects(ctx, src.s3, bucket, prefix, maxRecoverMessages-len(src.items))
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			src.items = append(src.items, "s3:"+k)
		}
	}
	// Nothing to recover is refused before the request is spent: a typo'd
	// prefix, an empty directory, or a symbolic link given as the
	// directory (the walk does not follow links) would otherwise spend
	// the custodians' approvals on a "finished" recovery of nothing.
	if len(src.items) == 0 {
		return nil, usagef("no message to recover under --messages %q or --s3 %q (a symbolic link is not followed: give the directory itself)", f.messages, f.s3)
	}
	slices.Sort(src.items)
	return src, nil
}

// rewrap rewraps the item named name.
func (src *recoverSources) rewrap(ctx context.Context, from *phicrypt.Encryptor, objects *s3crypt.Client, to keyring.Keyring, name string) error {
	if key, ok := strings.CutPrefix(name, "s3:"); ok {
		_, err := objects.Rewrap(ctx, src.bucket, key, to, nil)
		return err
	}
	rel := strings.TrimPrefix(name, "file:")
	return rewrapFile(ctx, from, to, filepath.Join(src.dir, filepath.FromSlash(rel)))
}

// parseS3URL splits s3://BUCKET/PREFIX.
func parseS3URL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" {
		return "", "", usagef("--s3 %q: want s3://BUCKET/PREFIX", u)
	}
	return bucket, prefix, nil
}

// s3Client is the custodian's S3 client: the session's AWS configuration,
// or the shared-configuration profile given, at endpoint when set.
func s3Client(ctx context.Context, s *session, endpoint, profile string) (*s3.Client, error) {
	cfg := s.aws
	if profile != "" {
		var err error
		cfg, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithSharedConfigProfile(profile),
			awsconfig.WithRegion(s.cfg.Region), awsconfig.WithLogger(logging.Nop{}))
		if err != nil {
			return nil, fmt.Errorf("loading the AWS profile %s for S3: %w", profile, err)
		}
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
			// S3-compatible servers do not all return the checksums the
			// SDK would otherwise check; s3crypt authenticates every byte
			// it reads anyway.
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}), nil
}

// listObjects lists the keys under prefix, at most max of them.
func listObjects(ctx context.Context, c *s3.Client, bucket, prefix string, max int) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if len(keys) >= max {
				return nil, fmt.Errorf("more than %d messages to recover: recover them in parts", maxRecoverMessages)
			}
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
