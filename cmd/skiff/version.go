package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-dev/skiff/apis"
)

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of skiff and of the Kubernetes API it serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := apis.VersionInfo()
			switch output {
			case "":
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Version: %s (%s, %s)\n",
					info.GitVersion, info.GoVersion, info.Platform)
				return err
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			default:
				return fmt.Errorf("--output must be json or empty, not %q", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json prints the whole version record, as the API's /version answers")
	return cmd
}
