// Command skiff is the one binary of a skiff cluster: `skiff up` runs a whole cluster on this
// machine, and each part also runs alone (`skiff apiserver`, ...).
//
// It only wires parts together from flags: what a part does lives in that part's package, never
// here.
package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/internal/gctune"
)

func main() {
	if err := newRootCommand().ExecuteContext(context.Background()); err != nil {
		// cobra has printed the error
		os.Exit(1)
	}
}

// globalOptions are the flags every subcommand takes.
type globalOptions struct {
	verbosity int
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "skiff",
		Short:         "skiff is a Kubernetes-compatible cluster in one binary",
		SilenceUsage:  true, // a failure to run is not a usage mistake
		SilenceErrors: false,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			setUpLogging(cmd, g.verbosity)
			// the parts that hold a cluster's objects keep half their live heap as the
			// collector's headroom on large heaps, not all of it (GOGC in the environment wins)
			gctune.Start()
		},
	}
	root.PersistentFlags().IntVar(&g.verbosity, "v", 0,
		"log verbosity: 0 logs what starts and stops, 2 and above one line per API request, 4 and above debug detail")
	root.AddCommand(
		newVersionCommand(),
		newAPIServerCommand(g),
		newUpCommand(g),
		newKubeletCommand(g),
		newSimCommand(g),
		newProxyCommand(g),
		newNetworkPolicyCommand(g),
		newIngressCommand(g),
		newDNSCommand(g),
		newSchedulerCommand(g),
		newControllerManagerCommand(g),
		newImagesCommand(),
		newTokenCommand(),
		newAgentCommand(g),
		newResetCommand(),
		newEtcdSnapshotCommand(),
		newEtcdMemberCommand(),
	)
	return root
}

// setUpLogging sends the process's log, one line per event, to the command's standard error.
func setUpLogging(cmd *cobra.Command, verbosity int) {
	level := slog.LevelInfo
	if verbosity >= 4 {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})))
}

// defaultDataDir is $HOME/.skiff, or .skiff in the working directory when there is no home.
func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".skiff"
	}
	return filepath.Join(home, ".skiff")
}
