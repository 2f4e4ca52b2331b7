package job

import "testing"

// A slot packs length, source, status and disposition into one word: each
// must survive the others being set.
func TestSlotPacking(t *testing.T) {
	var s slot
	s.setDo(doUnrecorded)
	s.set(srcJournal, 1<<40, 1<<lenBits-1, stSucceeded, 2147483647)
	if s.do() != doUnrecorded || s.src() != srcJournal || s.status() != stSucceeded || s.len() != 1<<lenBits-1 || s.off != 1<<40 || s.count != 2147483647 {
		t.Errorf("after set: %+v do=%d src=%d status=%d len=%d", s, s.do(), s.src(), s.status(), s.len())
	}
	s.setDo(doSkip)
	s.set(srcReport, 7, 9, stOther, 0)
	if s.do() != doSkip || s.src() != srcReport || s.status() != stOther || s.len() != 9 || s.off != 7 || s.count != 0 {
		t.Errorf("after a second set: %+v do=%d src=%d status=%d len=%d", s, s.do(), s.src(), s.status(), s.len())
	}
	s.setDo(doSend)
	if s.do() != doSend || s.src() != srcReport || s.status() != stOther || s.len() != 9 {
		t.Errorf("setDo changed more than the disposition: %+v", s)
	}
}
