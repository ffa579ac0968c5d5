package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (a *app) policyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "generate and check KMS key policies that separate custodians from services",
		Args:  exactArgs(0, "a subcommand: generate or check"),
		RunE:  func(*cobra.Command, []string) error { return usagef("policy needs a subcommand: generate or check") },
	}
	c.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "print the KMS key policy for the custodians, services and auditors",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return errors.New("policy generate is not available in this build yet")
		},
	}, &cobra.Command{
		Use:   "check",
		Short: "check a KMS key's policy keeps custodians from Decrypt and services from administration",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return errors.New("policy check is not available in this build yet")
		},
	})
	return c
}
