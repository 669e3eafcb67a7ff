package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/internal/broker"
)

func init() { registry = append(registry, newBrokerCmd) }

func newBrokerCmd() *cobra.Command {
	var o broker.Options
	var topics string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded Kafka-protocol broker on loopback (for local use and the demo)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topics != "" {
				o.Topics = strings.Split(topics, ",")
			}
			b, err := broker.Start(o)
			if err != nil {
				return err
			}
			defer b.Close()
			persist := "in memory"
			if o.DataDir != "" {
				persist = "persisted in " + o.DataDir
			}
			fmt.Printf("broker listening on %s (%s); Ctrl-C stops it\n", b.Addr(), persist)
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&o.Port, "port", 9092, "port on 127.0.0.1 (0 picks a free one)")
	cmd.Flags().StringVar(&o.DataDir, "data-dir", "", "persist topics and group offsets in this directory")
	cmd.Flags().IntVar(&o.Partitions, "partitions", 4, "partitions of created topics")
	cmd.Flags().StringVar(&topics, "topics", "", "comma-separated topics to create at start")
	return cmd
}
