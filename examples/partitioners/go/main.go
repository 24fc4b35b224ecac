// Where sarama and kafka-go put a record keyed by an MSISDN, for each partitioner a producer might use.
//
//	go run . 12 < ../msisdns.txt
//
// Prints one line per MSISDN: the MSISDN, then the partition chosen by
//
//	sarama.NewMurmur2Partitioner                 (sarama >= 1.50: Java-compatible, built in)
//	sarama.NewCustomPartitioner(WithAbsFirst(), WithCustomHashFunction(murmur2)) (older sarama)
//	sarama.NewCustomPartitioner(WithCustomHashFunction(murmur2)), no WithAbsFirst (a pitfall)
//	sarama.NewHashPartitioner                    (sarama's default: FNV-1a, not Java's)
//	kafka.Murmur2Balancer{}                      (kafka-go: Java-compatible)
//	kafka.Murmur2Balancer{Consistent: true}      (the same for non-nil keys)
//	kafka.Hash{}                                 (kafka-go's FNV-1a hash balancer, not Java's)
//
// Not part of CI: examples/partitioners/compare.py runs it by hand and compares with Java.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
)

// javaMurmur2 is Kafka's Utils.murmur2 (seed 0x9747b28c) as a hash.Hash32, for sarama's
// WithCustomHashFunction on a sarama without NewMurmur2Partitioner.
type javaMurmur2 struct{ data []byte }

func newJavaMurmur2() hash.Hash32 { return &javaMurmur2{} }

func (h *javaMurmur2) Write(p []byte) (int, error) { h.data = append(h.data, p...); return len(p), nil }
func (h *javaMurmur2) Reset()                      { h.data = h.data[:0] }
func (h *javaMurmur2) Size() int                   { return 4 }
func (h *javaMurmur2) BlockSize() int              { return 4 }
func (h *javaMurmur2) Sum(b []byte) []byte         { return binary.BigEndian.AppendUint32(b, h.Sum32()) }

func (h *javaMurmur2) Sum32() uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	b := h.data
	v := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := binary.LittleEndian.Uint32(b)
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		v *= m
		v ^= k
	}
	switch len(b) {
	case 3:
		v ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		v ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		v ^= uint32(b[0])
		v *= m
	}
	v ^= v >> 13
	v *= m
	v ^= v >> 15
	return v
}

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: go run . PARTITIONS < msisdns.txt")
		os.Exit(2)
	}
	saramas := []sarama.Partitioner{
		sarama.NewMurmur2Partitioner("t"),
		sarama.NewCustomPartitioner(sarama.WithAbsFirst(), sarama.WithCustomHashFunction(newJavaMurmur2))("t"),
		sarama.NewCustomPartitioner(sarama.WithCustomHashFunction(newJavaMurmur2))("t"),
		sarama.NewHashPartitioner("t"),
	}
	balancers := []kafka.Balancer{&kafka.Murmur2Balancer{}, &kafka.Murmur2Balancer{Consistent: true}, &kafka.Hash{}}
	partitions := make([]int, n)
	for i := range partitions {
		partitions[i] = i
	}
	fmt.Println("msisdn sarama_murmur2 sarama_custom_absfirst sarama_custom_no_absfirst sarama_default " +
		"kafkago_murmur2 kafkago_murmur2_consistent kafkago_hash")
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		msisdn := strings.TrimSpace(scanner.Text())
		if msisdn == "" {
			continue
		}
		row := []string{msisdn}
		for _, p := range saramas {
			got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(msisdn)}, int32(n))
			if err != nil {
				panic(err)
			}
			row = append(row, strconv.Itoa(int(got)))
		}
		for _, b := range balancers {
			row = append(row, strconv.Itoa(b.Balance(kafka.Message{Key: []byte(msisdn)}, partitions...)))
		}
		fmt.Println(strings.Join(row, " "))
	}
}
