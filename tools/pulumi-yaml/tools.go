//go:build tools

// Package tools pins the YAML language host (pulumi-language-yaml) that install.sh builds.
package tools

import (
	_ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
)
