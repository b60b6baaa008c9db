//go:build tools

// Package tools pins the Pulumi CLI that the project's Makefile builds (see README "How the CLI is obtained").
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
