// Simulation model of the Lattice ECP5 MULT18X18D DSP multiplier: the subset that
// hdl/dsp.py (RegisteredMultiplier, ECP5 target) instantiates, so that the ECP5
// netlist can run on Verilator (tests/test_rtl_fp.py). Written from the behaviour in
// Lattice TN1267 (ECP5 sysDSP usage guide):
//   P = A * B, A and B two's complement when SIGNEDA / SIGNEDB is high;
//   REG_INPUTA_CLK / REG_INPUTB_CLK / REG_OUTPUT_CLK = "CLK0": the operand / product
//   register is clocked by CLK0, enabled by CE0, reset (synchronously) by RST0;
//   "NONE": the register is bypassed.
//   SOURCEB_MODE = "B_SHIFT" with SOURCEB low: B comes from the B input (SOURCEB high
//   would take the neighbour's shifted B, not modelled).
// Anything else (other clocks, the pipeline register, cascades, SOURCEA/B shift
// inputs, the C input, MULT_BYPASS) is outside the subset and stops the simulation;
// the ports hdl/dsp.py leaves unconnected (CLK1-3, CE1-3, RST1-3, the shift-chain
// inputs SRIA/SRIB and all outputs but P) are left out.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module MULT18X18D (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CE0, RST0,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter RESETMODE = "SYNC";
    parameter GSR = "ENABLED";

    localparam IN_A = REG_INPUTA_CLK == "CLK0";
    localparam IN_B = REG_INPUTB_CLK == "CLK0";
    localparam OUT_P = REG_OUTPUT_CLK == "CLK0";

    initial begin
        if (!(REG_INPUTA_CLK == "NONE" || (IN_A && REG_INPUTA_CE == "CE0" && REG_INPUTA_RST == "RST0"))
                || !(REG_INPUTB_CLK == "NONE" || (IN_B && REG_INPUTB_CE == "CE0" && REG_INPUTB_RST == "RST0"))
                || !(REG_OUTPUT_CLK == "NONE" || (OUT_P && REG_OUTPUT_CE == "CE0" && REG_OUTPUT_RST == "RST0"))
                || REG_PIPELINE_CLK != "NONE" || REG_INPUTC_CLK != "NONE"
                || MULT_BYPASS != "DISABLED" || RESETMODE != "SYNC"
                || SOURCEB_MODE != "B_SHIFT")
            $fatal(1, "MULT18X18D model: configuration outside the modelled subset");
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_q = 18'd0, b_q = 18'd0;
    reg [35:0] p_q = 36'd0;
    wire [17:0] a_m = IN_A ? a_q : a;
    wire [17:0] b_m = IN_B ? b_q : b;
    // 19-bit operands: the sign bit when signed, a zero above an unsigned operand
    wire signed [18:0] a_x = {SIGNEDA & a_m[17], a_m};
    wire signed [18:0] b_x = {SIGNEDB & b_m[17], b_m};
    wire signed [37:0] prod = a_x * b_x;
    always @(posedge CLK0) begin
        if (RST0) begin
            a_q <= 18'd0;
            b_q <= 18'd0;
            p_q <= 36'd0;
        end else if (CE0) begin
            a_q <= a;
            b_q <= b;
            p_q <= prod[35:0];
        end
    end
    wire [35:0] p = OUT_P ? p_q : prod[35:0];
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on DECLFILENAME */
