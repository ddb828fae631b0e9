// Lint and simulation stand-in for the Lattice ECP5 EHXPLLL PLL: the ports and
// parameters hdl/tops/ulx3s.py uses, so Verilator can check the board top. It does not
// model frequency synthesis: CLKOP follows CLKI, and LOCK rises after 16 CLKI cycles
// (RST holds it low). The real PLL's dividers are checked against Project Trellis's
// ecppll instead (tests/test_board_amaranth.py).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module EHXPLLL #(
    parameter PLLRST_ENA = "DISABLED",
    parameter INTFB_WAKE = "DISABLED",
    parameter STDBY_ENABLE = "DISABLED",
    parameter DPHASE_SOURCE = "DISABLED",
    parameter OUTDIVIDER_MUXA = "DIVA",
    parameter OUTDIVIDER_MUXB = "DIVB",
    parameter OUTDIVIDER_MUXC = "DIVC",
    parameter OUTDIVIDER_MUXD = "DIVD",
    parameter integer CLKI_DIV = 1,
    parameter CLKOP_ENABLE = "ENABLED",
    parameter integer CLKOP_DIV = 8,
    parameter integer CLKOP_CPHASE = 0,
    parameter integer CLKOP_FPHASE = 0,
    parameter FEEDBK_PATH = "CLKOP",
    parameter integer CLKFB_DIV = 1
) (
    input CLKI, CLKFB, RST, STDBY, PHASESEL1, PHASESEL0, PHASEDIR, PHASESTEP,
    input PHASELOADREG, PLLWAKESYNC, ENCLKOP,
    output CLKOP,
    output reg LOCK
);
    reg [4:0] count = 5'd0;
    assign CLKOP = CLKI;
    initial LOCK = 1'b0;
    always @(posedge CLKI) begin
        if (RST) begin
            count <= 5'd0;
            LOCK <= 1'b0;
        end else if (!count[4]) begin
            count <= count + 5'd1;
        end else begin
            LOCK <= 1'b1;
        end
    end
endmodule
