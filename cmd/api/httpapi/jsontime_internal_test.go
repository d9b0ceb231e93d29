package httpapi

import (
	"testing"
	"time"
)

// TestMarshalJSONTimes: times at any depth come out UTC to the
// millisecond, and the value given is left as it was.
func TestMarshalJSONTimes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 21, 0, 0, 123456789, time.FixedZone("KST", 9*3600))
	type node struct {
		At      time.Time        `json:"at"`
		Ptr     *time.Time       `json:"ptr"`
		Nil     *time.Time       `json:"nil"`
		Any     any              `json:"any"`
		Map     map[string]any   `json:"map"`
		Kids    []node           `json:"kids,omitempty"`
		private time.Time        // copied as it is, not encoded
		Raw     map[string]int64 `json:"raw"`
	}
	in := node{At: at, Ptr: &at, Any: at, Map: map[string]any{"t": at}, Kids: []node{{At: at}}, private: at, Raw: map[string]int64{"n": 1}}
	b, err := marshalJSON(&in)
	if err != nil {
		t.Fatal(err)
	}
	const w = `"2026-05-01T12:00:00.123Z"`
	want := `{"at":` + w + `,"ptr":` + w + `,"nil":null,"any":` + w + `,"map":{"t":` + w + `},"kids":[{"at":` + w +
		`,"ptr":null,"nil":null,"any":null,"map":null,"raw":null}],"raw":{"n":1}}`
	if string(b) != want {
		t.Errorf("marshalJSON =\n%s\nwant\n%s", b, want)
	}
	if in.At != at || *in.Ptr != at || in.Any != at || in.Map["t"] != at || in.Kids[0].At != at || in.private != at {
		t.Errorf("input changed: %+v", in)
	}
}
