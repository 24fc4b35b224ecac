// Send one command to the ecash worker and wait for its result (docs/contracts.md), with franz-go.
//
//	go run . -msisdn 08131234567 -amount 100000 [-type charge|credit] [-trace T] [-timeout 60s]
//
// Brokers and topics: -bootstrap, -commands, -results, or ECASH_KAFKA_BOOTSTRAP_SERVERS,
// ECASH_COMMANDS_TOPIC, ECASH_RESULTS_TOPIC (the worker's own settings), else the README's defaults.
// Prints every result for the trace number on stdout (one JSON per line); exit 0 on a final result,
// 1 on timeout (an interim `unresolved` result is not final: an operator closes it later), 2 on an error.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Command is the command contract (schemas/command.schema.json). Amount is a decimal string, never a float.
type Command struct {
	SchemaVersion int    `json:"schema_version"`
	Type          string `json:"type"`
	TraceNumber   string `json:"trace_number"`
	Msisdn        string `json:"msisdn"`
	Amount        string `json:"amount"`
}

// Result holds the fields of a result this program reads; decoding ignores the others, as it must.
type Result struct {
	TraceNumber string `json:"trace_number"`
	Outcome     string `json:"outcome"`
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	bootstrap := flag.String("bootstrap", env("ECASH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"), "brokers, comma-separated")
	commands := flag.String("commands", env("ECASH_COMMANDS_TOPIC", "ecash.commands"), "commands topic")
	results := flag.String("results", env("ECASH_RESULTS_TOPIC", "ecash.results"), "results topic")
	kind := flag.String("type", "charge", "charge or credit")
	msisdn := flag.String("msisdn", "", "the wallet's MSISDN (required): also the record key")
	amount := flag.String("amount", "", `a decimal string such as "100000" or "1500.50" (required)`)
	trace := flag.String("trace", newTraceNumber(), "trace number: 1-32 of [0-9A-Za-z], new for every payment")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait for a final result")
	flag.Parse()
	if *msisdn == "" || *amount == "" {
		flag.Usage()
		os.Exit(2)
	}
	final, err := run(*bootstrap, *commands, *results, Command{1, *kind, *trace, *msisdn, *amount}, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	if !final {
		fmt.Fprintf(os.Stderr, "no final result for %s within %s\n", *trace, *timeout)
		os.Exit(1)
	}
}

func run(bootstrap, commandsTopic, resultsTopic string, cmd Command, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		// Kafka's Java default partitioner for keyed records: toPositive(murmur2(key)) % partitions.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Only results of committed transactions: the worker publishes in transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return false, err
	}
	defer cl.Close()

	// Where the results topic ends now: our result can only come after, so read from there.
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, resultsTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return false, fmt.Errorf("listing the end offsets of %s: %w", resultsTopic, err)
	}

	value, err := json.Marshal(cmd)
	if err != nil {
		return false, err
	}
	record := &kgo.Record{Topic: commandsTopic, Key: []byte(cmd.Msisdn), Value: value}
	if err := cl.ProduceSync(ctx, record).FirstErr(); err != nil {
		return false, fmt.Errorf("sending the command: %w", err)
	}
	fmt.Fprintf(os.Stderr, "sent %s to %s partition %d offset %d\n", cmd.TraceNumber, record.Topic, record.Partition, record.Offset)

	cl.AddConsumePartitions(ends.KOffsets())
	for {
		fetches := cl.PollFetches(ctx)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, nil
		}
		if err := fetches.Err(); err != nil {
			return false, err
		}
		for _, rec := range fetches.Records() {
			var result Result
			if json.Unmarshal(rec.Value, &result) != nil || result.TraceNumber != cmd.TraceNumber {
				continue // another command's result (or not one at all)
			}
			fmt.Println(string(rec.Value))
			if result.Outcome != "unresolved" {
				return true, nil
			}
		}
	}
}

// newTraceNumber is "GO" and 24 random hex digits: unique per payment, within the contract's [0-9A-Za-z]{1,32}.
func newTraceNumber() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "GO" + hex.EncodeToString(b)
}
