// Command pulumi-language-nodejs is the project's own Node.js language host for the Pulumi CLI.
//
// Why our own: Pulumi's host is the module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3, and
// the Go module proxy this project builds from refuses every version of it (403 "This module version is not
// available"), as it does for the Python host (see ../pulumi-language-python). Everything a host needs is served
// elsewhere: the gRPC contract and the package-manager logic are in the SDK module (sdk/v3: proto/go, nodejs/npm),
// the TypeScript code generators in pkg/v3 (codegen/nodejs), and the program runner ships in the program's own
// node_modules (@pulumi/pulumi/cmd/run, which also registers ts-node for TypeScript). So this host is small: it
// starts that runner with the engine's arguments and config, and maps its exit status as Pulumi's host does (32:
// the program already told the user, so bail quietly).
//
// Served: Run (preview/up/refresh/destroy), InstallDependencies (`pulumi install`: npm, yarn, pnpm or bun, as
// Pulumi.yaml's `packagemanager` option or the lock file says), GeneratePackage (`pulumi package gen-sdk --language
// nodejs`) and GenerateProgram (`pulumi import` prints TypeScript). Not served: plugin discovery from node_modules
// (providers come from Pulumi.yaml's `plugins.providers` or `pulumi plugin install`), debugging, `pulumi new`
// prompts and templates, `pulumi package add` (Link), packing, policy packs and plugins written in Node.js
// (RunPlugin), the `sync` invoke pipes and Bun as the runtime. The engine treats an Unimplemented answer as
// "nothing to add" for the calls a deployment makes.
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
	"strings"
	"time"

	"github.com/oppie/oppie-pulumi/tools/pulumi/internal/langhost"
	"github.com/pulumi/pulumi/pkg/v3/codegen/hcl2/syntax"
	codegen "github.com/pulumi/pulumi/pkg/v3/codegen/nodejs"
	"github.com/pulumi/pulumi/pkg/v3/codegen/pcl"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	"github.com/pulumi/pulumi/sdk/v3/nodejs/npm"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// The runner @pulumi/pulumi ships for language hosts: it connects to the engine, loads the program (registering
// ts-node first for TypeScript) and waits for its resources before exiting.
const runner = "node_modules/@pulumi/pulumi/cmd/run"

// Exit status with which the runner says it has already shown the user an actionable message.
const exitAfterUserMessage = 32

func main() {
	showVersion := flag.Bool("version", false, "print the host's version and exit")
	flag.String("tracing", "", "accepted for compatibility; tracing is not forwarded")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	host := &nodeHost{}
	langhost.Serve(host, &host.Base)
}

type nodeHost struct {
	langhost.Base
}

// nodeOptions are Pulumi.yaml's `runtime.options` for nodejs, with Pulumi's defaults.
type nodeOptions struct {
	typescript     bool   // run the program through ts-node (default true; false for plain JavaScript)
	tsconfig       string // a tsconfig other than ./tsconfig.json
	nodeargs       []string
	packagemanager npm.PackageManagerType
}

func options(info *pulumirpc.ProgramInfo) (nodeOptions, error) {
	opts := nodeOptions{typescript: true, packagemanager: npm.AutoPackageManager}
	for key, value := range info.GetOptions().AsMap() {
		switch key {
		case "typescript":
			b, ok := value.(bool)
			if !ok {
				return opts, errors.New("the typescript option in Pulumi.yaml must be true or false")
			}
			opts.typescript = b
		case "tsconfig", "nodeargs", "packagemanager":
			s, ok := value.(string)
			if !ok {
				return opts, fmt.Errorf("the %s option in Pulumi.yaml must be a string", key)
			}
			switch key {
			case "tsconfig":
				opts.tsconfig = s
			case "nodeargs":
				// Split on spaces only: quoting is not interpreted (Pulumi's host uses shell rules).
				opts.nodeargs = strings.Fields(s)
			default:
				opts.packagemanager = npm.PackageManagerType(s)
			}
		}
	}
	return opts, nil
}

// findRunner looks for @pulumi/pulumi's runner in the program's node_modules or a parent's (npm workspaces hoist
// packages to the workspace root), the folders Node.js itself would search.
func findRunner(programDir string) (string, error) {
	for dir := programDir; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, filepath.FromSlash(runner))
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("@pulumi/pulumi is not installed in %s or a parent folder: "+
				"run `npm ci` (or `npm install`, `pulumi install`) there first", programDir)
		}
	}
}

func (h *nodeHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	opts, err := options(info)
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on PATH: install Node.js (22 or later, " +
			"what @pulumi/pulumi 3.270 declares)"}, nil
	}
	run, err := findRunner(info.GetProgramDirectory())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := append([]string{}, opts.nodeargs...)
	args = append(args, run)
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.Engine)
	flagArg("organization", req.GetOrganization())
	flagArg("project", req.GetProject())
	flagArg("root-directory", info.GetRootDirectory())
	flagArg("stack", req.GetStack())
	// The runner resolves the entry point and the tsconfig from here.
	flagArg("pwd", info.GetProgramDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	// "." unless Pulumi.yaml names a `main`: the runner then takes package.json's main (or index.ts/index.js).
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	// @pulumi/pulumi reads the stack config and its secret keys from the environment (runtime/config.ts), as
	// JSON objects keyed "<namespace>:<name>".
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
	env := append(os.Environ(), "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(keys))
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = env
	// Not os.Stdout itself: handing Node.js the CLI's own descriptors lets it switch them to non-blocking mode,
	// after which the CLI's writes can fail with EAGAIN. Wrapped writers make exec copy through a pipe instead.
	cmd.Stdout, cmd.Stderr = struct{ io.Writer }{os.Stdout}, struct{ io.Writer }{os.Stderr}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Node.js program: %v", err)}, nil
		}
		if exitErr.ExitCode() == exitAfterUserMessage {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d",
			exitErr.ExitCode())}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// InstallDependencies serves `pulumi install` (and the Automation API's install): the package manager of
// Pulumi.yaml's `packagemanager` option, else the one the lock file names (npm by default), installs the program's
// dependencies, its output streamed to the CLI.
func (h *nodeHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := options(req.GetInfo())
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	if _, err := npm.Install(server.Context(), opts.packagemanager, req.GetInfo().GetProgramDirectory(),
		false /* production: devDependencies hold typescript and ts-node */, stdout, stderr); err != nil {
		return err
	}
	return closer.Close()
}

// GeneratePackage serves `pulumi package gen-sdk --language nodejs`: Pulumi's TypeScript code generator (pkg/v3's
// codegen/nodejs, the one Pulumi's own host calls) writes the SDK of a package schema into the requested folder.
func (h *nodeHost) GeneratePackage(
	ctx context.Context, req *pulumirpc.GeneratePackageRequest,
) (*pulumirpc.GeneratePackageResponse, error) {
	return langhost.GeneratePackage(req, func(pkg *schema.Package, loader schema.ReferenceLoader) (map[string][]byte, error) {
		return codegen.GeneratePackage("pulumi-language-nodejs", pkg, req.GetExtraFiles(),
			req.GetLocalDependencies(), req.GetLocal(), loader)
	})
}

// GenerateProgram serves `pulumi import`: the CLI describes the imported resources in PCL, and Pulumi's TypeScript
// program generator turns that into the code to paste.
func (h *nodeHost) GenerateProgram(
	ctx context.Context, req *pulumirpc.GenerateProgramRequest,
) (*pulumirpc.GenerateProgramResponse, error) {
	loader, err := schema.NewLoaderClient(req.GetLoaderTarget())
	if err != nil {
		return nil, err
	}
	defer loader.Close()

	parser := syntax.NewParser()
	for name, source := range req.GetSource() {
		if err := parser.ParseFile(strings.NewReader(source), name); err != nil {
			return nil, err
		}
	}
	if parser.Diagnostics.HasErrors() {
		return &pulumirpc.GenerateProgramResponse{
			Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(parser.Diagnostics),
		}, nil
	}
	var bind []pcl.BindOption
	if !req.GetStrict() {
		// What `pulumi import` asks for: the PCL may name a parent or provider that is not declared in it.
		bind = pcl.NonStrictBindOptions()
	}
	program, diags, err := pcl.BindProgram(parser.Files, schema.NewCachedLoader(loader), bind...)
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return &pulumirpc.GenerateProgramResponse{Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}, nil
	}
	files, genDiags, err := codegen.GenerateProgram(program)
	if err != nil {
		return nil, err
	}
	diags = append(diags, genDiags...)
	return &pulumirpc.GenerateProgramResponse{
		Source:      files,
		Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags),
	}, nil
}
