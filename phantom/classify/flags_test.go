package classify

import "flag"

// testingLong selects the long training test (go test -run TrainLearns
// -args -long): it takes minutes.
var testingLong = false

func init() { flag.BoolVar(&testingLong, "long", false, "run the long training test") }
