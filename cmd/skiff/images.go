package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/kubelet/localcontainerd"
	"github.com/skiff-dev/skiff/kubelet/ociimage"
)

// imagesImportOptions are the flags of `skiff images import`.
type imagesImportOptions struct {
	runtimeEndpoint string
	dataDir         string
}

func newImagesCommand() *cobra.Command {
	images := &cobra.Command{
		Use:   "images",
		Short: "Manage the images of a node's containerd (no registry needed)",
		Args:  cobra.NoArgs,
	}
	images.AddCommand(newImagesImportCommand(), newImagesServeCommand())
	return images
}

func newImagesServeCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "serve FILE.tar...",
		Short: "Serve image tarballs as a read-only registry, for registry mirrors",
		Long: `Serve the images of OCI image layout tarballs (gzip-compressed or not) over the registry
API, read-only, under the names they were built with, whatever registry those names give:
'skiff up --registry-mirror "*=http://ADDR"' then pulls them with any imagePullPolicy, with no
registry reachable. Each tarball's images are kept in memory. Runs until interrupted.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runImagesServe(ctx, addr, files, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&addr, "address", "127.0.0.1:5000", "the host:port the registry listens on (plain HTTP)")
	return cmd
}

// runImagesServe loads every tarball, then serves them on addr until ctx ends.
func runImagesServe(ctx context.Context, addr string, files []string, stdout io.Writer) error {
	registry := ociimage.NewRegistry()
	for _, f := range files {
		file, err := os.Open(f)
		if err != nil {
			return err
		}
		names, err := registry.Load(file)
		file.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	slog.Info("serving images", "address", ln.Addr().String(), "tarballs", len(files))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newImagesImportCommand() *cobra.Command {
	o := &imagesImportOptions{}
	cmd := &cobra.Command{
		Use:   "import FILE.tar...",
		Short: "Load image tarballs into containerd, where the kubelet's pods find them",
		Long: `Load image tarballs, in OCI image layout ('skopeo copy ... oci-archive:', 'buildah push')
or Docker archive ('docker save') form, gzip-compressed or not, into the k8s.io namespace of
containerd, the one the kubelet's pods see. Pods run them with imagePullPolicy IfNotPresent or
Never. By default the containerd is the one 'skiff up --data-dir DIR' runs; prints the name of
each image imported.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runImagesImport(ctx, o, files, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.runtimeEndpoint, "container-runtime-endpoint", "",
		"containerd's socket (unix:///PATH or PATH); default: the containerd of skiff up --data-dir")
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "the data dir of the skiff up whose containerd gets the images")
	return cmd
}

// runImagesImport checks every file, then imports them one by one, printing each image's name.
func runImagesImport(ctx context.Context, o *imagesImportOptions, files []string, stdout io.Writer) error {
	// every file first: a typo in the last one imports nothing rather than half
	for _, f := range files {
		if err := localcontainerd.CheckImageTarball(f); err != nil {
			return err
		}
	}
	socket, hint := o.socket()
	if socket == "" {
		return errors.New("--container-runtime-endpoint fake has no images to import into")
	}
	for _, f := range files {
		names, err := localcontainerd.ImportFile(ctx, socket, f)
		if errors.Is(err, localcontainerd.ErrNotRunning) {
			return fmt.Errorf("%v: %s", err, hint)
		}
		if err != nil {
			return fmt.Errorf("import %s: %w", f, err)
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
	}
	return nil
}

// socket is the containerd socket the images go to, and what to tell a user when nothing
// answers there; "" for the fake runtime.
func (o *imagesImportOptions) socket() (socket, hint string) {
	if o.runtimeEndpoint == "" {
		return localcontainerd.SocketIn(filepath.Join(o.dataDir, "containerd")),
			"start `skiff up --data-dir " + o.dataDir + "` or give --container-runtime-endpoint"
	}
	if o.runtimeEndpoint == fakeRuntimeEndpoint {
		return "", ""
	}
	return strings.TrimPrefix(o.runtimeEndpoint, "unix://"), "check --container-runtime-endpoint"
}

// importImageDir is the kubelet's --image-dir at start: every tarball in dir goes into the
// containerd at socket, one log line per image and one for the total. A tarball that fails is
// logged and skipped, as k3s does with its agent/images dir: one bad file should not keep the
// node from running everything else, and a pod that needs the missing image says so in its
// status (ErrImageNeverPull or a pull error).
func importImageDir(ctx context.Context, socket, dir string) error {
	var imported, failed int
	err := localcontainerd.ImportDir(ctx, socket, dir, func(file string, names []string, err error) {
		if err != nil {
			failed++
			slog.Error("image tarball not imported", "file", file, "err", err)
			return
		}
		for _, n := range names {
			imported++
			slog.Info("imported image", "image", n, "file", file)
		}
	})
	if err != nil {
		return fmt.Errorf("import images from %s: %w", dir, err)
	}
	slog.Info("imported images from --image-dir", "dir", dir, "images", imported, "failed", failed)
	return nil
}
