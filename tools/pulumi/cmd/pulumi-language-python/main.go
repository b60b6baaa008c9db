// Command pulumi-language-python is the project's own Python language host for the Pulumi CLI.
//
// Why our own: Pulumi's host lives in the module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3,
// which carries no version tags, and the Go module proxy this project builds from refuses every version of it
// (403 "This module version is not available", tried with v3.274.1, a commit hash and a pseudo-version). The CLI
// itself (pkg/v3) and the SDK module (sdk/v3) are served, and the SDK module holds everything a host needs: the
// gRPC contract (proto/go), the Python toolchain logic that resolves the project's virtualenv (python/toolchain)
// and the executor script that runs the program (python/cmd/pulumi-language-python-exec). So this host does what
// Pulumi's does on the path a Python program takes through `pulumi preview/up/refresh/destroy`: it resolves the
// toolchain from Pulumi.yaml's runtime options, runs the executor with the engine's arguments and config, and maps
// the exit status the same way (32: the program already told the user, so bail quietly). It also serves
// `pulumi package gen-sdk --language python` with Pulumi's own Python code generator (GeneratePackage). Plugin
// discovery, debugging, typecheckers, program codegen and `pulumi new` prompts are left unimplemented: the engine
// treats an Unimplemented answer as "nothing to add" for the calls a deployment makes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/oppie/oppie-pulumi/tools/pulumi/internal/langhost"
	codegen "github.com/pulumi/pulumi/pkg/v3/codegen/python"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// The executor script Pulumi ships in the SDK module; the build copies it beside this binary.
const executorName = "pulumi-language-python-exec"

// Exit status with which the executor says it has already shown the user an actionable message.
const exitAfterUserMessage = 32

func main() {
	showVersion := flag.Bool("version", false, "print the host's version and exit")
	executor := flag.String("use-executor", "", "run this executor instead of the one beside the host")
	flag.String("tracing", "", "accepted for compatibility; tracing is not forwarded")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	exe := *executor
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("could not locate the language host: %w", err))
		}
		exe = filepath.Join(filepath.Dir(self), executorName)
		if _, err := os.Stat(exe); err != nil {
			cmdutil.Exit(fmt.Errorf("missing executor %s (rebuild the CLI with `make cli`): %w", exe, err))
		}
	}

	host := &pythonHost{exec: exe}
	langhost.Serve(host, &host.Base)
}

type pythonHost struct {
	langhost.Base

	exec string
}

func options(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	raw := info.GetOptions().AsMap()
	if v, ok := raw["virtualenv"]; ok {
		s, ok := v.(string)
		if !ok {
			return opts, errors.New("the virtualenv option in Pulumi.yaml must be a string")
		}
		opts.Virtualenv = s
	}
	if v, ok := raw["toolchain"]; ok {
		switch v {
		case "pip":
			opts.Toolchain = toolchain.Pip
		case "uv":
			opts.Toolchain = toolchain.Uv
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		default:
			return opts, fmt.Errorf("unsupported toolchain option in Pulumi.yaml: %v", v)
		}
	}
	if v, ok := raw["typechecker"]; ok && v != "" {
		return opts, fmt.Errorf("this language host does not run typecheckers (typechecker: %v): "+
			"run it before `pulumi up`", v)
	}
	return opts, nil
}

func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	opts, err := options(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	args := []string{h.exec}
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.Engine)
	flagArg("project", req.GetProject())
	flagArg("root_directory", req.GetInfo().GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("organization", req.GetOrganization())
	args = append(args, req.GetInfo().GetEntryPoint())
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("could not serialize the stack config: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("could not serialize the secret config keys: %w", err)
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(keys))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python executor: %v", err)}, nil
		}
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.ExitStatus() == exitAfterUserMessage {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d",
			exitErr.ExitCode())}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// InstallDependencies serves `pulumi install` (and the Automation API's install): create the virtualenv named in
// Pulumi.yaml and install the program's requirements into it, streaming pip's output to the CLI.
func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := options(req.GetInfo())
	if err != nil {
		return err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	stdout, stderr := &streamWriter{send: server.Send, stdout: true}, &streamWriter{send: server.Send}
	ctx := server.Context()
	dir := req.GetInfo().GetProgramDirectory()
	if err := tc.EnsureVenv(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	return tc.InstallDependencies(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

type streamWriter struct {
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stdout bool
}

var _ io.Writer = (*streamWriter)(nil)

func (w *streamWriter) Write(p []byte) (int, error) {
	chunk := append([]byte(nil), p...)
	msg := &pulumirpc.InstallDependenciesResponse{Stderr: chunk}
	if w.stdout {
		msg = &pulumirpc.InstallDependenciesResponse{Stdout: chunk}
	}
	if err := w.send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

// GeneratePackage serves `pulumi package gen-sdk --language python`: Pulumi's Python code generator (pkg/v3's
// codegen/python, the one Pulumi's own host calls) writes the SDK of a package schema into the requested folder.
func (h *pythonHost) GeneratePackage(
	ctx context.Context, req *pulumirpc.GeneratePackageRequest,
) (*pulumirpc.GeneratePackageResponse, error) {
	return langhost.GeneratePackage(req, func(pkg *schema.Package, loader schema.ReferenceLoader) (map[string][]byte, error) {
		return codegen.GeneratePackage("pulumi-language-python", pkg, req.GetExtraFiles(), loader)
	})
}
