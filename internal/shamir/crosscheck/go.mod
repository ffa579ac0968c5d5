module github.com/phicrypt/phicrypt/internal/shamir/crosscheck

go 1.26.0

require (
	github.com/getsops/sops/v3 v3.13.3
	github.com/phicrypt/phicrypt v0.0.0
)

replace github.com/phicrypt/phicrypt => ../../..
