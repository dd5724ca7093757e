package dataset

import (
	"strings"
	"unicode"
)

// Laterality swapping for horizontal flips.
//
// A chest radiograph flipped left-right shows a right pleural effusion on
// the patient's left, so a flipped sample's caption must swap its sides.
// SwapLaterality works on words (runs of letters and digits; "left-sided"
// is the words "left" and "sided", "L1" is one word and is not a side):
//   - "left" <-> "right", "leftward(s)" <-> "rightward(s)", and the prefixes
//     "levo" <-> "dextro" in levo/dextro-scoliosis, -convex(ity),
//     -curvature, -rotation, -rotated, -rotatory; letter case is kept
//     ("Left" -> "Right", "LEFT" -> "RIGHT");
//   - the abbreviations "l"/"r" and "lt"/"rt" only when the next word is an
//     anatomical or side word from lateralWords ("r lower lobe", "L
//     hemidiaphragm", "rt IJ"); anywhere else ("L>R", "R/O", "ECG lead R")
//     they are ambiguous and the caption is refused;
//   - the caption is refused when "left" follows a verb form that makes it
//     the past tense of "leave" ("was left in place"), or when it names the
//     heart's side or situs (dextrocardia, levocardia, mesocardia, situs),
//     since a flipped image changes that anatomy in a way a word swap does
//     not describe.
//
// Even a perfectly swapped caption does not make a flipped radiograph
// anatomically normal: the heart, the aortic knob and the gastric bubble
// change sides, which is why flipping is off by default.

// lateralWords are the words after which "l", "r", "lt" and "rt" mean a side.
var lateralWords = map[string]bool{
	"lung": true, "lungs": true, "lower": true, "upper": true, "middle": true, "mid": true,
	"base": true, "bases": true, "basilar": true, "basal": true, "apex": true, "apical": true,
	"hemithorax": true, "hemidiaphragm": true, "hemidiaphragmatic": true, "pleural": true,
	"effusion": true, "costophrenic": true, "cp": true, "chest": true, "side": true, "sided": true,
	"lobe": true, "perihilar": true, "hilar": true, "hilum": true, "ij": true, "internal": true,
	"subclavian": true, "picc": true, "arm": true, "breast": true, "clavicle": true, "rib": true,
	"ribs": true, "shoulder": true, "axillary": true, "axilla": true, "cardiophrenic": true,
	"paratracheal": true, "retrocardiac": true, "mainstem": true, "bronchus": true, "atrium": true,
	"atrial": true, "ventricle": true, "ventricular": true, "jugular": true, "pneumothorax": true,
	"lateral": true, "anterior": true, "posterior": true, "heart": true, "border": true,
}

// leaveVerbs precede "left" when it is the past tense of "leave".
var leaveVerbs = map[string]bool{"was": true, "were": true, "is": true, "are": true, "been": true, "be": true, "being": true, "remains": true, "remain": true, "has": true, "have": true, "had": true}

// levoSuffixes are the word endings after "levo"/"dextro" that are swapped.
var levoSuffixes = []string{"scoliosis", "scoliotic", "convex", "convexity", "curvature", "rotation", "rotated", "rotatory", "rotary"}

// SwapLaterality returns caption with its left/right words swapped, and
// false when the caption cannot be swapped safely (see the rules above).
// A caption without side words is returned unchanged with true.
func SwapLaterality(caption string) (string, bool) {
	type word struct{ start, end int }
	var words []word
	start := -1
	for i, r := range caption {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		if alnum && start < 0 {
			start = i
		} else if !alnum && start >= 0 {
			words = append(words, word{start, i})
			start = -1
		}
	}
	if start >= 0 {
		words = append(words, word{start, len(caption)})
	}
	lower := func(i int) string {
		if i < 0 || i >= len(words) {
			return ""
		}
		return strings.ToLower(caption[words[i].start:words[i].end])
	}
	var b strings.Builder
	last := 0
	for i, w := range words {
		orig := caption[w.start:w.end]
		lw := strings.ToLower(orig)
		var repl string
		switch lw {
		case "left":
			if leaveVerbs[lower(i-1)] {
				return caption, false
			}
			repl = "right"
		case "right":
			repl = "left"
		case "leftward":
			repl = "rightward"
		case "rightward":
			repl = "leftward"
		case "leftwards":
			repl = "rightwards"
		case "rightwards":
			repl = "leftwards"
		case "l", "r", "lt", "rt":
			if !lateralWords[lower(i+1)] {
				return caption, false
			}
			repl = map[string]string{"l": "r", "r": "l", "lt": "rt", "rt": "lt"}[lw]
		case "situs", "mesocardia":
			return caption, false
		default:
			for _, pre := range [2]string{"levo", "dextro"} {
				if !strings.HasPrefix(lw, pre) {
					continue
				}
				rest := lw[len(pre):]
				if strings.HasPrefix(rest, "card") || strings.HasPrefix(rest, "position") || strings.HasPrefix(rest, "posed") {
					return caption, false
				}
				for _, s := range levoSuffixes {
					if rest == s {
						other := "dextro"
						if pre == "dextro" {
							other = "levo"
						}
						repl = other + rest
					}
				}
			}
		}
		if repl == "" {
			continue
		}
		b.WriteString(caption[last:w.start])
		b.WriteString(matchCase(orig, repl))
		last = w.end
	}
	if last == 0 {
		return caption, true
	}
	b.WriteString(caption[last:])
	return b.String(), true
}

// matchCase writes repl in the letter case of orig: all upper, a capital
// first letter, or lower.
func matchCase(orig, repl string) string {
	if strings.ToUpper(orig) == orig && strings.ToLower(orig) != orig {
		return strings.ToUpper(repl)
	}
	r := []rune(orig)
	if unicode.IsUpper(r[0]) {
		rr := []rune(repl)
		rr[0] = unicode.ToUpper(rr[0])
		return string(rr)
	}
	return repl
}
