module zerohop.dev/examples

go 1.19

require zerohop.dev/zerohop v0.0.0

replace zerohop.dev/zerohop => ../../client/go
