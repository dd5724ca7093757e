package clip

import (
	"strings"
	"testing"
)

// benchReport is a long radiology report (several findings and an
// impression), about 300 CLIP tokens.
const benchReport = `FINDINGS: Frontal and lateral chest radiographs demonstrate a moderate right pleural effusion with adjacent compressive atelectasis. There is mild interstitial edema and stable cardiomediastinal silhouette. No focal consolidation is seen. No pneumothorax. Degenerative changes of the thoracic spine with mild anterior wedging of T11. Surgical clips in the right upper quadrant. An enteric tube terminates below the diaphragm in the expected region of the stomach; a right internal jugular central venous catheter terminates at the cavoatrial junction. Sternotomy wires are intact and aligned. The left costophrenic angle is blunted, likely a trace effusion. Bibasilar opacities may reflect atelectasis, though aspiration or early pneumonia cannot be excluded in the appropriate clinical setting.
IMPRESSION: 1. Moderate right pleural effusion with compressive atelectasis, increased since 03/14/2021. 2. Mild pulmonary vascular congestion/interstitial edema. 3. Lines and tubes as above. Recommend clinical correlation and follow-up imaging in 4-6 weeks.`

// BenchmarkEncodeReport measures tokens/s on the report with the word cache
// warm (the usual case: a tokenizer encodes many prompts).
func BenchmarkEncodeReport(b *testing.B) {
	tok := loadShared(b)
	ids, err := tok.Tokens(benchReport)
	must(b, err)
	b.SetBytes(int64(len(benchReport)))
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := tok.EncodeChunks(benchReport); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkEncodeReportUncached runs cleaning, pre-tokenisation and BPE on
// every word each time (no cache).
func BenchmarkEncodeReportUncached(b *testing.B) {
	tok := loadShared(b)
	ids, err := tok.Tokens(benchReport)
	must(b, err)
	b.SetBytes(int64(len(benchReport)))
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := preTokenize(cleanText(benchReport), func(w string) error {
			ids, err := tok.bpe.bpeWord(w)
			n += len(ids)
			return err
		})
		if err != nil || n != len(ids) {
			b.Fatal(err, n)
		}
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkCleanReport measures the ftfy-subset cleaning alone.
func BenchmarkCleanReport(b *testing.B) {
	b.SetBytes(int64(len(benchReport)))
	for b.Loop() {
		if s := cleanText(benchReport); !strings.HasPrefix(s, "findings") {
			b.Fatal(s)
		}
	}
}
