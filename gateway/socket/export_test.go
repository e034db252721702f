package socket

// Reading is closed once Run reads notifications: a notification written
// after it is delivered.
func (s *Server) Reading() <-chan struct{} { return s.reading }
