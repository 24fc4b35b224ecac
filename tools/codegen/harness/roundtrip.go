// Round trip through the generated Go models: decode each message (unknown fields refused unless the
// request is "lenient", so every field of an example must exist in the type), encode it again, print it. Also matches strings
// against the amount pattern with Go's regexp (RE2). Input and output: one JSON object per line.
// Copied next to the generated packages by tests/contracts/test_codegen.py.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"

	"contractscheck/mdl"
	"contractscheck/qt"
)

type request struct {
	ID       string          `json:"id"`
	Contract string          `json:"contract"`
	Message  json.RawMessage `json:"message"`
	Lenient  bool            `json:"lenient"`
	Pattern  string          `json:"pattern"`
	Texts    []string        `json:"texts"`
}

type answer struct {
	ID      string          `json:"id"`
	Encoded json.RawMessage `json:"encoded,omitempty"`
	Error   string          `json:"error,omitempty"`
	Matches []bool          `json:"matches,omitempty"`
}

func roundTrip[T any](message []byte, lenient bool) (json.RawMessage, error) {
	var value T
	decoder := json.NewDecoder(bytes.NewReader(message))
	if !lenient { // as a consumer decodes: unknown fields ignored
		decoder.DisallowUnknownFields()
	}
	if err := decoder.Decode(&value); err != nil {
		return nil, err
	}
	return json.Marshal(&value)
}

var contracts = map[string]func([]byte, bool) (json.RawMessage, error){
	"quicktype/command":         roundTrip[qt.Command],
	"quicktype/result":          roundTrip[qt.Result],
	"quicktype/dead_letter":     roundTrip[qt.DeadLetter],
	"quicktype/review_record":   roundTrip[qt.ReviewRecord],
	"quicktype/review_decision": roundTrip[qt.ReviewDecision],
	"modelina/command":          roundTrip[mdl.Command],
	"modelina/result":           roundTrip[mdl.Result],
	"modelina/dead_letter":      roundTrip[mdl.DeadLetter],
	"modelina/review_record":    roundTrip[mdl.ReviewRecord],
	"modelina/review_decision":  roundTrip[mdl.ReviewDecision],
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		var req request
		if err := json.Unmarshal(scanner.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ans := answer{ID: req.ID}
		if req.Pattern != "" {
			re := regexp.MustCompile(req.Pattern)
			for _, text := range req.Texts {
				ans.Matches = append(ans.Matches, re.MatchString(text))
			}
		} else if run, ok := contracts[req.Contract]; !ok {
			ans.Error = "no such contract: " + req.Contract
		} else if encoded, err := run(req.Message, req.Lenient); err != nil {
			ans.Error = err.Error()
		} else {
			ans.Encoded = encoded
		}
		if err := out.Encode(ans); err != nil {
			os.Exit(2)
		}
	}
}
