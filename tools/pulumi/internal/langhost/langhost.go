// Package langhost is what this project's two language hosts (cmd/pulumi-language-python and
// cmd/pulumi-language-nodejs) share: serving the engine's gRPC protocol, and the calls both answer the same way.
// Each host embeds Base and adds what is its own (Run, InstallDependencies, GeneratePackage, ...).
package langhost

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Base answers the calls both hosts answer alike; Engine is the engine's address (from the command line or the
// handshake).
type Base struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	Engine string
}

func (b *Base) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	b.Engine = req.EngineAddress
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (b *Base) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// No plugins to announce: Pulumi's hosts list the packages a program depends on so that the engine can download
// their plugins before the run. Downloads are off here, and a resource plugin a program uses is named in
// Pulumi.yaml (plugins.providers) or installed with `pulumi plugin install`; the engine starts it when the program
// first registers one of its resources (the dynamic provider's host sits on PATH beside the CLI).
func (b *Base) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (b *Base) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (b *Base) GetProgramDependencies(
	context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

// Serve serves host until the engine goes away or the user interrupts: the main of a language host once its
// flags are parsed. The engine's address, when the CLI passes one, is the first argument after the flags.
func Serve(host pulumirpc.LanguageRuntimeServer, base *Base) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	if args := flag.Args(); len(args) > 0 {
		base.Engine = args[0]
		// Exit with the engine: a host outliving a killed CLI would hold its port and its children.
		if err := rpcutil.Healthcheck(ctx, base.Engine, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the health check: %w", err))
		}
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host: %w", err))
	}
	// The engine reads the port from the first line we print.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("the language host stopped serving: %w", err))
	}
}

// WriteFiles writes generated files (an SDK, a program) under dir, creating folders as needed.
func WriteFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// GeneratePackage serves `pulumi package gen-sdk`: it binds the request's package schema and has generate (one
// of Pulumi's code generators, pkg/v3's codegen/<language>) write its SDK into the requested folder. A schema
// with errors is answered with its diagnostics and no files.
func GeneratePackage(
	req *pulumirpc.GeneratePackageRequest,
	generate func(pkg *schema.Package, loader schema.ReferenceLoader) (map[string][]byte, error),
) (*pulumirpc.GeneratePackageResponse, error) {
	loader, err := schema.NewLoaderClient(req.GetLoaderTarget())
	if err != nil {
		return nil, err
	}
	defer loader.Close()

	var spec schema.PackageSpec
	if err := json.Unmarshal([]byte(req.GetSchema()), &spec); err != nil {
		return nil, fmt.Errorf("could not read the package schema: %w", err)
	}
	pkg, diags, err := schema.BindSpec(spec, loader, schema.ValidationOptions{AllowDanglingReferences: true})
	if err != nil {
		return nil, err
	}
	if !diags.HasErrors() {
		files, err := generate(pkg, loader)
		if err != nil {
			return nil, err
		}
		if err := WriteFiles(req.GetDirectory(), files); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.GeneratePackageResponse{Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}, nil
}
