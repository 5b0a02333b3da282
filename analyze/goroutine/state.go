package goroutine

// StateFromFrames derives the wait reason from a stack for the aggregated
// formats (debug=1, protobuf), which print none. It returns the string the
// debug=2 text prints for the same wait in Go 1.26 (runtime2.go
// waitReasonStrings), so a group has the same state whichever format it came
// from, and "" when the frames do not tell.
//
// The protobuf profile keeps the runtime frames at the top
// (runtime.gopark, runtime.chanrecv…), which name the operation. debug=1
// hides them: there only the sync, netpoll and sleep entry points below them
// show, and a channel operation cannot be told from user code.
//
// A receive or send on a nil channel parks from the same functions as on a
// real channel; from frames alone it reads as "chan receive" / "chan send".
func StateFromFrames(frames []Frame) string {
	return deriveState(frames, false)
}

// deriveState is StateFromFrames with nilChan set when the caller could tell
// (from the profile's function start lines) that a channel operation parked
// on its nil-channel path.
func deriveState(frames []Frame, nilChan bool) string {
	i := 0
	parked := false
	for i < len(frames) {
		switch frames[i].Func {
		case "runtime.gopark", "runtime.goparkunlock":
			parked = true
			i++
			continue
		}
		break
	}
	for ; i < len(frames); i++ {
		fn := frames[i].Func
		switch fn {
		case "runtime.chanrecv", "runtime.chanrecv1", "runtime.chanrecv2":
			if nilChan {
				return "chan receive (nil chan)"
			}
			return "chan receive"
		case "runtime.chansend", "runtime.chansend1":
			if nilChan {
				return "chan send (nil chan)"
			}
			return "chan send"
		case "runtime.selectgo", "runtime.reflect_rselect", "reflect.rselect":
			return "select"
		case "runtime.block":
			return "select (no cases)"
		case "runtime.semacquire1", "runtime.semacquire":
			// The reason comes from the entry point below it.
			continue
		case "internal/sync.runtime_SemacquireMutex", "sync.runtime_SemacquireMutex":
			return "sync.Mutex.Lock"
		case "sync.runtime_SemacquireRWMutexR":
			return "sync.RWMutex.RLock"
		case "sync.runtime_SemacquireRWMutex":
			return "sync.RWMutex.Lock"
		case "sync.runtime_SemacquireWaitGroup":
			return "sync.WaitGroup.Wait"
		case "sync.runtime_Semacquire", "internal/poll.runtime_Semacquire":
			return "semacquire"
		case "sync.runtime_notifyListWait", "runtime.notifyListWait":
			return "sync.Cond.Wait"
		case "runtime.netpollblock", "internal/poll.runtime_pollWait", "runtime.poll_runtime_pollWait":
			return "IO wait"
		case "time.Sleep", "runtime.timeSleep":
			return "sleep"
		case "runtime.forcegchelper":
			return "force gc (idle)"
		case "runtime.bgsweep":
			return "GC sweep wait"
		case "runtime.bgscavenge":
			return "GC scavenge wait"
		case "runtime.runfinq":
			return "finalizer wait"
		case "runtime.gcBgMarkWorker":
			return "GC worker (idle)"
		case "internal/synctest.Wait", "testing/synctest.Wait":
			return "synctest.Wait"
		case "internal/synctest.Run", "testing/synctest.Run":
			return "synctest.Run"
		}
		break
	}
	if parked {
		return "waiting"
	}
	return ""
}
